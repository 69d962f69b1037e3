"""For random event logs and random crash points (between batches, mid-transaction), a resumed
projector's database equals a one-shot rebuild. Real SQLite files, in-memory event log."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.eventstore import BadEvent, InMemoryEventStore
from adapters.sqlite import open_db
from domain import commands as c
from domain.events import Envelope, JobStarted, encode_event
from domain.specs import parse_job_spec
from projections.engine import apply_batch
from services.executor import CommandExecutor
from services.projector import Projector
from services.rebuild import _compare, build

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})

job_cmds = st.one_of(
    st.just(c.DispatchJob(spec=SPEC)),
    st.builds(
        c.RecordStatus,
        status=st.sampled_from(["received", "running", "completed", "failed", "cancelled"]),
        attempt=st.sampled_from([None, 1, 2]),
        worker_id=st.sampled_from(["w-1", "w-2"]),
        progress=st.sampled_from([None, "a", "b"]),
        result=st.sampled_from([None, {"ok": True}]),
    ),
    st.just(c.RequestCancel("op")),
    st.just(c.FailJob(reason="stuck", error="quiet")),
)
other_cmds = st.one_of(
    st.tuples(
        st.just("task"),
        st.sampled_from(["task-1", "task-2"]),
        st.one_of(
            st.just(c.LaunchTask(goal="g", mode="script", timeout_seconds=60)),
            st.builds(
                c.RecordTaskStatus,
                status=st.sampled_from(["running", "progress", "completed", "failed"]),
                message=st.just("m"),
            ),
            st.just(c.TimeOutTask(60)),
        ),
    ),
    st.tuples(
        st.just("extension"),
        st.sampled_from(["ext-1"]),
        st.one_of(
            st.builds(
                c.AnnounceExtension,
                name=st.just("e"),
                version=st.sampled_from(["1", "2"]),
                mcp_url=st.just("http://e/mcp"),
            ),
            st.just(c.RecordHeartbeat()),
            st.just(c.MarkExtensionOffline()),
            st.just(c.DeregisterExtension()),
        ),
    ),
    st.tuples(
        st.just("service"),
        st.just("worker-w1"),
        st.builds(
            c.ReportServiceHealth,
            up=st.booleans(),
            service=st.just("worker"),
            instance=st.just("w1"),
        ),
    ),
    st.tuples(
        st.just("brain"),
        st.just("brain-a"),
        st.one_of(
            st.just(c.StartBrain("active", "1")),
            st.builds(c.ActivateBrain, generation=st.integers(1, 3)),
            st.just(c.DrainBrain("h-1")),
            st.just(c.ShutDownBrain("bye")),
        ),
    ),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("job"), st.sampled_from(["job-1", "job-2", "job-3"]), job_cmds),
        other_cmds,
        st.just(("poison", "", None)),
        st.just(("garbage", "", None)),
    ),
    min_size=1,
    max_size=40,
)


async def make_log(script: list[tuple[str, str, Any]]) -> InMemoryEventStore:
    store = InMemoryEventStore()
    executor = CommandExecutor(store)
    for aggregate, agg_id, cmd in script:
        if aggregate == "poison":  # readable, but no job row to start: the fold refuses it
            stray = Envelope("e-p", "job", "job-stray", 1, EPOCH, JobStarted(attempt=1))
            store.put_raw("baker.events.job.job-stray", encode_event(stray))
        elif aggregate == "garbage":
            store.put_raw("baker.events.job.job-1", b"\x00 not an event")
        else:
            await executor.execute(aggregate, agg_id, cmd)
    return store


class Crash(Exception):
    pass


def fail() -> None:
    raise Crash


async def resume_through_crashes(
    store: InMemoryEventStore, path: Path, cuts: list[int], kinds: list[bool]
) -> None:
    items = [i async for i in store.read_all(1, include_bad=True)]
    projector = Projector(store, path)
    await projector.open()
    for cut, mid in zip(cuts, kinds, strict=False):
        batch = [i for i in items if i.seq > projector.applied][:cut]
        if not batch:
            break
        if mid:  # crash inside the transaction: nothing of this batch may survive
            assert projector.writer is not None
            cps = projector.checkpoints
            with contextlib.suppress(Crash):
                await projector.writer.run(
                    lambda db: apply_batch(db, batch, cps, fail_before_commit=fail)  # noqa: B023
                )
        else:
            await projector.apply(batch)
        await projector.close()  # the process dies; a new one starts on the same file
        projector = Projector(store, path)
        await projector.open()
    rest = [i for i in items if i.seq > projector.applied]
    if rest:
        await projector.apply(rest)
    await projector.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=steps,
    cuts=st.lists(st.integers(1, 7), max_size=8),
    kinds=st.lists(st.booleans(), max_size=8),
)
def test_a_resumed_projector_equals_a_one_shot_rebuild(
    script: list[Any], cuts: list[int], kinds: list[bool]
) -> None:
    async def scenario() -> None:
        store = await make_log(script)
        with tempfile.TemporaryDirectory() as tmp:
            live, fresh = Path(tmp) / "live.db", Path(tmp) / "fresh.db"
            await resume_through_crashes(store, live, cuts, kinds)
            await build(store, fresh)
            a, b = await open_db(live, readonly=True), await open_db(fresh, readonly=True)
            try:
                report = await _compare(a, b, await store.head_seq(), 5)
            finally:
                await a.close()
                await b.close()
            assert report.ok, report.diffs
            bad = [i async for i in store.read_all(1, include_bad=True) if isinstance(i, BadEvent)]
            db = await open_db(live, readonly=True)
            async with db.execute("SELECT count(*) FROM dead_letters") as cur:
                (dead,) = await cur.fetchone()  # type: ignore[misc]
            await db.close()
            poisons = sum(1 for a_, _, _ in script if a_ == "poison")
            assert dead == len(bad) + poisons

    asyncio.run(scenario())
