"""The queue's lifecycle (aggregate `queue`, DESIGN §11) and the Brain's pause and resume over
the in-memory event store and the fake queue."""

from __future__ import annotations

from adapters.eventstore import InMemoryEventStore
from domain import lifecycle
from domain.commands import PauseQueue, ResumeQueue
from domain.events import QueuePaused, QueueResumed
from domain.ids import AGGREGATES
from domain.lifecycle.queue import QUEUE_ID, QueueState
from services.brain.queue_control import QueueControl
from services.executor import CommandExecutor
from tests.fakes.jobqueue import FakeJobQueue


def test_the_queue_is_an_aggregate_with_a_lifecycle_table() -> None:
    assert "queue" in AGGREGATES
    rows = lifecycle.table_rows(lifecycle.lifecycle("queue").spec)
    assert rows  # `baker lifecycle queue` prints them
    assert lifecycle.initial_state("queue").status == "running"


def test_pause_and_resume_flip_it_and_restating_is_a_noop() -> None:
    running = QueueState()
    [paused_event] = lifecycle.decide("queue", running, PauseQueue(by="ops", reason="deploy"))
    assert isinstance(paused_event, QueuePaused) and paused_event.reason == "deploy"
    paused = lifecycle.evolve("queue", running, paused_event)
    assert (paused.status, paused.by, paused.version) == ("paused", "ops", 1)
    assert lifecycle.decide("queue", paused, PauseQueue()) == []
    assert lifecycle.decide("queue", running, ResumeQueue()) == []
    [resumed] = lifecycle.decide("queue", paused, ResumeQueue(by="ops"))
    assert isinstance(resumed, QueueResumed)
    assert lifecycle.fold("queue", [paused_event, resumed]).status == "running"


async def test_the_brain_records_then_pauses_every_lane_and_twice_is_one_event() -> None:
    store, fake = InMemoryEventStore(), FakeJobQueue()
    control = QueueControl(CommandExecutor(store), fake)
    first = await control.pause("ops", "maintenance")
    again = await control.pause("ops")
    assert (first.changed, again.changed) == (True, False)
    assert all(lane.paused for lane in (await fake.lanes()).values())
    doc = await control.describe()
    assert (doc["state"], doc["by"], doc["reason"]) == ("paused", "ops", "maintenance")
    assert doc["since"] and set(doc["lanes"]) == {"high", "normal", "low"}
    await control.resume("ops")
    history = await store.load("queue", QUEUE_ID)
    assert [type(e.envelope.data).__name__ for e in history.events] == [
        "QueuePaused", "QueueResumed",
    ]  # fmt: skip
    assert not any(lane.paused for lane in (await fake.lanes()).values())


async def test_a_new_brain_applies_the_recorded_pause() -> None:
    store = InMemoryEventStore()
    await QueueControl(CommandExecutor(store), FakeJobQueue()).pause("ops")
    fresh = FakeJobQueue()  # e.g. the pause was lost between the event and the server
    assert await QueueControl(CommandExecutor(store), fresh).reconcile() is True
    assert all(lane.paused for lane in (await fresh.lanes()).values())
