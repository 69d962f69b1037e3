"""Priority lanes and queue pause on a real server (DESIGN §11): a Brain, workers of
concurrency 1, and the order in which the log records what they took."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.nats import jsapi
from adapters.nats.server import NatsServerProcess
from domain.specs import parse_job_spec
from services.brain.queue_control import QueueControl
from tests.integration.pipeline import Pipeline, running_pipeline
from tests.polling import until


@pytest.fixture
async def pipe(nats_server: NatsServerProcess) -> AsyncIterator[Pipeline]:
    async with running_pipeline(nats_server) as p:
        yield p


async def dispatch(pipe: Pipeline, command: str, priority: str | None = None) -> str:
    doc = {"type": "command", "payload": {"command": command}}
    if priority is not None:
        doc["priority"] = priority
    return (await pipe.brain.dispatcher.dispatch(parse_job_spec(doc))).job_id


async def received_seq(pipe: Pipeline, job_id: str) -> int:
    history = await pipe.wait_job(job_id, {"completed"})
    return next(e.seq for e in history.events if e.envelope.type == "JobReceived")


async def consumer(pipe: Pipeline, name: str) -> dict[str, object]:
    return await jsapi.consumer_info(pipe.nc, "BAKER_JOBS", name)


async def test_a_saturated_worker_takes_high_then_normal_then_low(pipe: Pipeline) -> None:
    """Saturated by a job that runs while the others are queued: its one slot then takes the
    queued jobs by lane, whatever order they were dispatched in (read from the log)."""
    await pipe.start_worker(concurrency=1)
    blocker = await dispatch(pipe, "sleep 3")
    await pipe.wait_job(blocker, {"running"})
    jobs = {}
    for priority in ("low", None, "low", "high", "normal", "high"):
        jobs[await dispatch(pipe, "echo hi", priority)] = priority or "normal"
    assert (await pipe.store.load("job", blocker)).state.status == "running", (
        "the blocker ended before every job was queued: the worker was not saturated"
    )
    seqs = {job_id: await received_seq(pipe, job_id) for job_id in jobs}
    taken = sorted(jobs, key=seqs.__getitem__)
    assert [jobs[j] for j in taken] == ["high", "high", "normal", "normal", "low", "low"]
    # within a lane, first in first out
    assert [j for j in taken if jobs[j] == "low"] == [j for j in jobs if jobs[j] == "low"]


async def test_pause_holds_new_jobs_lets_running_ones_finish_and_resume_releases_them(
    pipe: Pipeline,
) -> None:
    await pipe.start_worker(concurrency=2)
    control = QueueControl(pipe.executor, pipe.brain.queue)
    running = await dispatch(pipe, "sleep 1")
    await pipe.wait_job(running, {"running"})
    assert (await control.pause("test", "maintenance")).changed
    assert not (await control.pause("test")).changed  # twice: a no-op
    held = [await dispatch(pipe, "echo held", p) for p in ("high", None, "low")]
    await pipe.wait_job(running, {"completed"})  # running jobs finish
    for name in ("workers-high", "workers", "workers-low"):
        info = await consumer(pipe, name)
        assert info.get("paused") is True, info
        assert info.get("num_pending") == 1 and info.get("num_ack_pending") == 0, info
    # a worker started while paused (e.g. after a restart) takes nothing either
    await pipe.start_worker(concurrency=1)
    assert await until(lambda: all(len(w.running) == 0 for w, _, _ in pipe.workers))
    for job_id in held:
        assert (await pipe.store.load("job", job_id)).state.status == "dispatched"
    assert (await control.describe())["lanes"]["normal"]["queued"] == 1
    assert (await control.resume("test")).changed
    for job_id in held:
        await pipe.wait_job(job_id, {"completed"})
    kinds = [e.envelope.type for e in (await pipe.store.load("queue", "main")).events]
    assert kinds == ["QueuePaused", "QueueResumed"]
