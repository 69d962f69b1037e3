"""The dispatcher over the in-memory job queue and event store: the event first, then the queue;
a queue that refuses leaves a failed job, never a dispatched one nobody will run; cancels."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from adapters.eventstore import InMemoryEventStore
from domain.commands import FailJob
from domain.queue import QueueFull
from domain.specs import parse_job_spec
from services.brain.dispatcher import (
    Dispatcher,
    DispatchFailed,
    JobAlreadyFinished,
    JobNotFound,
    new_job_id,
)
from services.executor import CommandExecutor, Outcome
from tests.fakes.jobqueue import FakeJobQueue

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}, "timeoutSeconds": 9})


def rig(**queue: Any) -> tuple[Dispatcher, FakeJobQueue, InMemoryEventStore, list[str]]:
    fake = FakeJobQueue(**queue)
    store = InMemoryEventStore()
    seen: list[str] = []

    def observe(job_id: str, outcome: Outcome) -> None:
        seen.append(f"{job_id}:{outcome.state.status}")

    # The store is shared with other writers in some tests: each has its own executor.
    return Dispatcher(CommandExecutor(store), fake, on_outcome=observe), fake, store, seen


async def types(store: InMemoryEventStore, job_id: str) -> list[str]:
    return [e.envelope.type for e in (await store.load("job", job_id)).events]


async def test_a_job_is_recorded_then_queued_under_its_id() -> None:
    dispatcher, queue, store, seen = rig()
    done = await dispatcher.dispatch(SPEC)
    assert await types(store, done.job_id) == ["JobDispatched"]
    assert done.seq == (await store.load("job", done.job_id)).position.seq
    [queued] = queue.published
    doc = json.loads(queued.data)
    assert (queued.subject, doc["id"], doc["type"], doc["timeoutSeconds"]) == (
        "baker.jobs.dispatch", done.job_id, "command", 9,
    )  # fmt: skip
    assert doc["replyTo"] == f"baker.jobs.status.{done.job_id}"
    assert queued.headers["Nats-Msg-Id"] == done.job_id
    assert seen == [f"{done.job_id}:dispatched"]


async def test_the_same_id_again_is_neither_recorded_nor_queued_twice() -> None:
    dispatcher, queue, store, _ = rig()
    await dispatcher.dispatch(SPEC, job_id="job-once")
    again = await dispatcher.dispatch(SPEC, job_id="job-once")
    assert again.job_id == "job-once"
    assert await types(store, "job-once") == ["JobDispatched"]
    assert len(queue.published) == 1


async def test_a_queue_that_does_not_answer_leaves_a_failed_job() -> None:
    dispatcher, queue, store, seen = rig()
    queue.unavailable = True
    with pytest.raises(DispatchFailed) as failed:
        await dispatcher.dispatch(SPEC, job_id="job-down")
    assert failed.value.job_id == "job-down"
    history = await store.load("job", "job-down")
    assert [e.envelope.type for e in history.events] == ["JobDispatched", "JobFailed"]
    assert history.events[-1].envelope.data.reason == "dispatch_failed"  # type: ignore[attr-defined]
    assert seen == ["job-down:dispatched", "job-down:failed"]


async def test_a_queue_refusing_for_room_leaves_a_failed_job_and_says_full() -> None:
    dispatcher, queue, store, _ = rig()

    async def full(*_args: Any) -> int:  # JetStream itself refused (another dispatcher raced)
        raise QueueFull("the job queue is full")

    queue.dispatch = full  # type: ignore[method-assign,assignment]
    with pytest.raises(QueueFull):
        await dispatcher.dispatch(SPEC, job_id="job-full")
    assert await types(store, "job-full") == ["JobDispatched", "JobFailed"]


async def test_admission_refuses_before_anything_is_recorded_when_the_queue_is_nearly_full() -> (
    None
):
    dispatcher, queue, store, _ = rig(max_messages=10)  # a tenth is kept for reports
    for i in range(9):
        await dispatcher.dispatch(SPEC, job_id=f"job-{i}")
    with pytest.raises(QueueFull):
        await dispatcher.dispatch(SPEC, job_id="job-refused")
    assert not (await store.load("job", "job-refused")).exists
    assert (await queue.fill())[0] == 9


async def test_cancel_records_the_request_and_signals_the_workers() -> None:
    dispatcher, queue, store, _ = rig()
    await dispatcher.dispatch(SPEC, job_id="job-c")
    seq = await dispatcher.cancel("job-c", "not needed")
    history = await store.load("job", "job-c")
    assert [e.envelope.type for e in history.events] == ["JobDispatched", "JobCancelRequested"]
    assert seq == history.position.seq
    assert await queue.cancel_signal("job-c") == "not needed"


async def test_cancel_of_an_unknown_or_finished_job_is_refused_without_a_signal() -> None:
    dispatcher, queue, store, _ = rig()
    with pytest.raises(JobNotFound):
        await dispatcher.cancel("job-nobody")
    await dispatcher.dispatch(SPEC, job_id="job-f")
    queue.unavailable = True  # nothing below may reach the queue
    failed = FailJob(reason="stuck", error="no sign of life")
    await CommandExecutor(store).execute("job", "job-f", failed)  # another writer fails it
    with pytest.raises(JobAlreadyFinished):
        await dispatcher.cancel("job-f")
    assert queue.cancels == {}


def test_job_ids_sort_by_the_millisecond_they_were_made_in() -> None:
    ms = 1_796_000_000_000  # 2026-12
    at = [new_job_id(lambda t=t: t * 1_000_000) for t in (ms, ms, ms + 1, ms + 1_000)]
    assert all(re.fullmatch(r"job-[0-9a-f]{24}", i) for i in at)
    assert at[0][:16] == at[1][:16] == f"job-{ms:012x}" and at[0] != at[1]
    assert at[1] < at[2] < at[3]
    assert len({new_job_id() for _ in range(1000)}) == 1000
