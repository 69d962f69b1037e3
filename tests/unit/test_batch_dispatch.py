"""Batch dispatch over the in-memory queue and event store: ids in order, each job its own
`JobDispatched` and queue message, appends pipelined; a bad spec anywhere refused naming its
index and field with nothing dispatched; no room for all refused with nothing recorded; a queue
that goes away half-way leaves each job running or failed `dispatch_failed`, never lost."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.eventstore import InMemoryEventStore
from domain.errors import FieldError
from domain.queue import QueueFull, QueueUnavailable
from domain.specs import parse_job_spec
from domain.wire import DispatchMessage
from services.api.job_control import parse_batch, with_header_key
from services.brain.batch import MAX_BATCH
from services.brain.dispatcher import Dispatcher
from services.executor import CommandExecutor
from tests.fakes.jobqueue import FakeJobQueue


def docs(n: int) -> list[dict[str, Any]]:
    return [
        {"type": "command", "payload": {"command": f"echo {i}"}, "labels": {"n": str(i)}}
        for i in range(n)
    ]


def rig(**queue: Any) -> tuple[Dispatcher, FakeJobQueue, InMemoryEventStore]:
    fake, store = FakeJobQueue(**queue), InMemoryEventStore()
    return Dispatcher(CommandExecutor(store), fake), fake, store


async def test_each_job_gets_its_own_events_and_message_in_order() -> None:
    dispatcher, queue, store = rig()
    done = await dispatcher.batches.dispatch(parse_batch({"jobs": docs(5)}))
    assert len(done.ids) == len(set(done.ids)) == 5 and done.failed == {}
    queued = [json.loads(m.data) for m in queue.published]
    assert [m["id"] for m in queued] == done.ids
    assert [m["payload"]["command"] for m in queued] == [f"echo {i}" for i in range(5)]
    assert [m["labels"] for m in queued] == [{"n": str(i)} for i in range(5)]
    for i, job_id in enumerate(done.ids):
        events = (await store.load("job", job_id)).events
        assert [e.envelope.type for e in events] == ["JobDispatched"]
        assert events[0].envelope.data.labels == {"n": str(i)}  # type: ignore[union-attr]
        assert events[0].envelope.causation_id is not None  # the batch: one cause for all
    assert done.seq == await store.head_seq() == 5
    assert dispatcher.executor.stats.cache_misses == 0  # nothing read: the appends pipelined


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"jobs": [*docs(3), {"type": "command", "payload": {}}]}, "jobs[3].payload.command"),
        ({"jobs": [docs(1)[0], {"type": "shell", "payload": {}}]}, "jobs[1].type"),
        ({"jobs": [docs(1)[0], "ls"]}, "jobs[1]"),
        ({"jobs": [{**docs(1)[0], "labels": {"a b": "c"}}]}, "jobs[0].labels.a b"),
        ({"jobs": [{**docs(1)[0], "idempotencyKey": "k"}]}, "jobs[0].idempotencyKey"),
        ({"jobs": []}, "jobs"),
        ({"jobs": docs(MAX_BATCH + 1)}, "jobs"),
        ({"job": []}, "jobs"),
        ([], "body"),
    ],
)
def test_a_bad_batch_is_refused_naming_index_and_field(body: Any, field: str) -> None:
    with pytest.raises(FieldError) as refused:
        parse_batch(body)
    assert refused.value.field == field


async def test_no_room_for_all_refuses_the_batch_with_nothing_recorded() -> None:
    dispatcher, queue, store = rig(max_messages=40)  # admission keeps a tenth for reports
    with pytest.raises(QueueFull):
        await dispatcher.batches.dispatch(parse_batch({"jobs": docs(37)}))
    assert queue.published == [] and await store.head_seq() == 0
    done = await dispatcher.batches.dispatch(parse_batch({"jobs": docs(36)}))
    assert len(done.ids) == 36 and done.failed == {}


class FlakyQueue(FakeJobQueue):
    """Refuses pipelined batches, and single dispatches of the jobs named in `refuse`."""

    def __init__(self, refuse: set[int]) -> None:
        super().__init__()
        self.refuse = refuse
        self.singles = 0

    async def dispatch_all(self, items: Any) -> None:
        await self.dispatch(items[0][0], items[0][1])  # one got through before the refusal
        raise QueueUnavailable("connection lost")

    async def dispatch(self, msg: DispatchMessage, headers: dict[str, str]) -> int:
        self.singles += 1
        if int(msg.payload["command"].split()[1]) in self.refuse:
            raise QueueUnavailable("still down")
        return await super().dispatch(msg, headers)


async def test_a_queue_lost_half_way_leaves_each_job_queued_once_or_failed() -> None:
    queue, store = FlakyQueue(refuse={2}), InMemoryEventStore()
    dispatcher = Dispatcher(CommandExecutor(store), queue)
    done = await dispatcher.batches.dispatch(parse_batch({"jobs": docs(4)}))
    assert list(done.failed) == [2] and "not queued" in done.failed[2]
    queued = [json.loads(m.data)["id"] for m in queue.published]
    assert queued == [done.ids[0], done.ids[1], done.ids[3]]  # job 0 not queued twice
    failed = await store.load("job", done.ids[2])
    assert failed.state.status == "failed"
    assert failed.events[-1].envelope.data.reason == "dispatch_failed"  # type: ignore[union-attr]


def test_the_idempotency_header_and_body_must_agree() -> None:
    assert with_header_key({"type": "x"}, "k")["idempotencyKey"] == "k"
    assert with_header_key({"idempotencyKey": "k"}, "k")["idempotencyKey"] == "k"
    assert with_header_key({"idempotencyKey": "k"}, None) == {"idempotencyKey": "k"}
    with pytest.raises(FieldError) as refused:
        with_header_key({"idempotencyKey": "k"}, "other")
    assert refused.value.field == "Idempotency-Key"


def test_an_idempotency_key_must_be_printable() -> None:
    doc = {"type": "command", "payload": {"command": "ls"}}
    assert parse_job_spec({**doc, "idempotencyKey": "order-1"}).idempotency_key == "order-1"
    for bad, words in (("a b", "printable"), ("", "at least 1"), ("k" * 256, "at most 255")):
        with pytest.raises(FieldError) as refused:
            parse_job_spec({**doc, "idempotencyKey": bad})
        assert refused.value.field == "idempotencyKey" and words in refused.value.reason
