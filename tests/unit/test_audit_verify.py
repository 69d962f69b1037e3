"""`domain.audit.verify` on exports written by the real write path (the in-memory store through
the executor): a valid log holds, and every single mutation of it is named at the right event
with what happened (changed, missing, reordered, inserted)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from adapters.eventstore import InMemoryEventStore, StoredEvent
from domain.audit import verify
from domain.commands import DispatchJob, RecordStatus
from domain.events import Envelope, JobDispatched, canonical_bytes, document_hash, encode_event
from domain.specs import parse_job_spec
from services.executor import CommandExecutor

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})
JOBS = ("job-a", "job-b", "job-c")


@functools.cache
def export() -> tuple[bytes, ...]:
    """A log as `baker audit export --all` writes it: three jobs' events interleaved, after
    one event of a job stored before the hash chain existed."""

    async def build() -> tuple[bytes, ...]:
        store = InMemoryEventStore()
        old = JobDispatched(job_type="command", payload={"command": "echo old"})
        env = Envelope("e-old", "job", "job-old", 1, _time(), old)
        store.put_raw("baker.events.job.job-old", encode_event(env))
        executor = CommandExecutor(store)
        for job in JOBS:
            await executor.execute("job", job, DispatchJob(spec=SPEC))
        for job in JOBS:
            await executor.execute("job", job, RecordStatus(status="running", attempt=1))
        for step in range(3):
            for job in JOBS:
                command = RecordStatus(status="running", attempt=1, progress=f"step {step} é")
                await executor.execute("job", job, command)
        await executor.execute("job", "job-old", RecordStatus(status="running", attempt=1))
        return tuple([i.raw async for i in store.read_all() if isinstance(i, StoredEvent)])

    return asyncio.run(build())


def _time() -> datetime:
    return datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


export()  # built once here: its random event ids must not be drawn inside a strategy


def check(lines: list[bytes]) -> Any:
    return verify(enumerate(lines, start=1))


def docs() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in export()]


def hashed_lines() -> list[int]:
    """0-based indexes of the lines that carry a hash."""
    return [n for n, d in enumerate(docs()) if "hash" in d]


def chain_of(n: int) -> list[int]:
    """0-based indexes of the lines of line n's aggregate, in order."""
    key = docs()[n]["aggregateId"]
    return [i for i, d in enumerate(docs()) if d["aggregateId"] == key and "hash" in d]


def test_a_valid_export_holds_and_counts_what_it_saw() -> None:
    verdict = check(list(export()))
    assert verdict.ok, verdict.first_break
    assert verdict.events == len(export()) == 17
    assert verdict.unhashed == 1  # the event stored before the chain: reported, not broken
    assert {c.aggregate_id for c in verdict.chains} == {*JOBS, "job-old"}


def test_the_canonical_bytes_are_the_stored_bytes_without_the_hash() -> None:
    for line in export()[1:]:
        doc = orjson.loads(line)
        assert line == canonical_bytes(doc)[:-1] + b',"hash":"' + doc["hash"].encode() + b'"}'
        assert doc["hash"] == hashlib.sha256(canonical_bytes(doc)).hexdigest()


def test_a_changed_field_is_named() -> None:
    lines = list(export())
    doc = orjson.loads(lines[7])
    doc["data"]["progress"] = "something else"
    lines[7] = orjson.dumps(doc)
    first = check(lines).first_break
    assert first is not None and (first.where, first.kind) == (8, "changed")
    assert first.event_id == doc["eventId"] and first.version == doc["version"]


def test_a_deleted_line_is_named_at_the_event_after_it() -> None:
    lines = list(export())
    chain = chain_of(4)
    gone = chain[1]
    del lines[gone]
    first = check(lines).first_break
    assert first is not None and first.kind == "missing"
    assert first.where == chain[2]  # the next event of the aggregate, one line up (1-based)


def test_two_swapped_lines_are_named_reordered() -> None:
    lines = list(export())
    a, b = chain_of(4)[1:3]
    lines[a], lines[b] = lines[b], lines[a]
    first = check(lines).first_break
    assert first is not None and (first.where, first.kind) == (a + 1, "reordered")


def test_a_forged_line_with_a_recomputed_hash_is_named_inserted() -> None:
    lines = list(export())
    forged = forge(orjson.loads(lines[5]), "0" * 64)
    lines.insert(6, forged)
    first = check(lines).first_break
    assert first is not None and (first.where, first.kind) == (7, "inserted")


def test_a_forged_line_with_the_right_predecessor_is_still_caught() -> None:
    lines = list(export())
    doc = orjson.loads(lines[4])
    before = lines[chain_of(4)[chain_of(4).index(4) - 1]]
    lines.insert(5, forge(doc, orjson.loads(before)["hash"]))
    first = check(lines).first_break
    assert first is not None and first.kind == "inserted"


def test_a_hash_taken_away_after_the_chain_started_is_a_break() -> None:
    lines = list(export())
    doc = orjson.loads(lines[-2])
    del doc["hash"], doc["prevHash"]
    lines[-2] = orjson.dumps(doc)
    first = check(lines).first_break
    assert first is not None and (first.where, first.kind) == (len(lines) - 1, "changed")


def test_lines_that_are_not_events_are_named() -> None:
    first = check([*export()[:3], b"{not json", *export()[3:]]).first_break
    assert first is not None and (first.where, first.kind) == (4, "changed")
    assert "not JSON" in first.detail


def forge(doc: dict[str, Any], prev_hash: str) -> bytes:
    """A made-up event for the aggregate of `doc`, with a hash that matches its content."""
    doc = dict(doc, data={**doc["data"], "progress": "forged"}, prevHash=prev_hash)
    doc["eventId"] = "forged-" + doc["eventId"][7:]
    doc["hash"] = document_hash(doc)
    return orjson.dumps(doc)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _other(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, dict | list):
        return {"added": 1}
    return "x"


def test_a_forged_event_put_before_the_first_events_of_its_aggregate_is_inserted() -> None:
    """Its aggregate began before the chain (an unhashed first event): the events after the
    forged one still make its chain, so it is the inserted one, not a gap (found by the
    property test below)."""
    lines = list(export())
    old = [i for i, d in enumerate(docs()) if d["aggregateId"] == "job-old" and "hash" in d]
    lines.insert(0, forge(orjson.loads(lines[old[0]]), "ab" * 32))
    first = check(lines).first_break
    assert first is not None and (first.where, first.kind) == (1, "inserted"), first


@st.composite
def mutated(draw: st.DrawFn) -> tuple[list[bytes], int, str]:
    """A valid export with one mutation, the 1-based line of the event that must be named,
    and the kind."""
    lines = list(export())
    hashed = hashed_lines()
    how = draw(st.sampled_from(["change", "delete", "swap", "insert"]))
    if how == "change":
        n = draw(st.sampled_from(hashed))
        doc = orjson.loads(lines[n])
        path = draw(st.sampled_from(_leaves(doc)))
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = _other(target[path[-1]])
        lines[n] = orjson.dumps(doc)
        return lines, n + 1, "changed"
    if how == "delete":  # not the last of its chain: nothing in the file can show that one
        n = draw(st.sampled_from([i for i in hashed if chain_of(i)[-1] != i]))
        after = chain_of(n)[chain_of(n).index(n) + 1]
        del lines[n]
        return lines, after, "missing"  # the next event of the chain, now one line up
    if how == "swap":
        n = draw(st.sampled_from([i for i in hashed if len(chain_of(i)) > 1]))
        chain = chain_of(n)
        a, b = sorted(draw(st.lists(st.sampled_from(chain), min_size=2, max_size=2, unique=True)))
        lines[a], lines[b] = lines[b], lines[a]
        return lines, a + 1, "reordered"
    n = draw(st.sampled_from(hashed))
    at = draw(st.integers(0, len(lines)))
    prev = draw(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
    lines.insert(at, forge(orjson.loads(lines[n]), prev))
    return lines, at + 1, "inserted"


@given(mutated())
def test_any_single_mutation_of_a_valid_export_is_detected(
    case: tuple[list[bytes], int, str],
) -> None:
    lines, where, kind = case
    first = check(lines).first_break
    assert first is not None
    assert (first.where, first.kind) == (where, kind), first
