"""Schedules on fakes (DESIGN §11): each slot fires exactly once, also across a restart and
with two Brains racing; missed slots fire once; paused slots are skipped; a fake clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.eventstore import InMemoryEventStore
from domain.schedules import slot_job_id
from domain.specs import parse_job_spec
from services.brain.dispatcher import Dispatcher
from services.brain.scheduler import Scheduler, ScheduleRefused
from services.executor import CommandExecutor
from tests.fakes.clock import FakeClock
from tests.fakes.jobqueue import FakeJobQueue

START = datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)
JOB = {"type": "command", "payload": {"command": "date"}}


class Rig:
    def __init__(self, store: InMemoryEventStore | None = None, clock: FakeClock | None = None,
                 queue: FakeJobQueue | None = None) -> None:  # fmt: skip
        self.clock = clock or FakeClock(START)
        self.store = store or InMemoryEventStore()
        self.queue = queue or FakeJobQueue(clock=self.clock)
        executor = CommandExecutor(self.store)
        self.dispatcher = Dispatcher(executor, self.queue)
        self.scheduler = Scheduler(executor, self.dispatcher, clock=self.clock)

    def dispatched(self) -> list[str]:
        return [json.loads(m.data)["id"] for m in self.queue.jobs.messages.values()
                if m.subject.startswith("baker.jobs.dispatch")]  # fmt: skip

    async def fired(self, name: str) -> list[Any]:
        history = await self.store.load("schedule", name)
        return [e.envelope.data for e in history.events if e.envelope.type == "ScheduleFired"]


async def test_each_slot_fires_once_with_a_job_id_derived_from_it() -> None:
    rig = Rig()
    await rig.scheduler.create("tick", {"every_seconds": 10, "job": JOB})
    await rig.scheduler.tick()
    assert rig.dispatched() == []  # the first slot is 10 s after the creation
    await rig.clock.advance(10)
    await rig.scheduler.tick()
    await rig.scheduler.tick()  # the same slot again: nothing
    (fired,) = await rig.fired("tick")
    assert fired.slot == START + timedelta(seconds=10)
    assert rig.dispatched() == [slot_job_id("tick", fired.slot)] == [fired.job_id]


async def test_missed_slots_fire_once_on_return() -> None:
    rig = Rig()
    await rig.scheduler.create("tick", {"every_seconds": 10, "job": JOB})
    await rig.clock.advance(45)  # slots at 10, 20, 30, 40: nothing ran
    await rig.scheduler.tick()
    (fired,) = await rig.fired("tick")
    assert (fired.slot, fired.missed) == (START + timedelta(seconds=40), 3)
    assert len(rig.dispatched()) == 1


async def test_a_restarted_brain_does_not_fire_a_slot_again() -> None:
    rig = Rig()
    await rig.scheduler.create("tick", {"every_seconds": 10, "job": JOB})
    await rig.clock.advance(10)
    await rig.scheduler.tick()
    again = Rig(rig.store, rig.clock, rig.queue)  # a new Brain on the same log and queue
    assert await again.scheduler.seed() == 1
    await again.scheduler.tick()
    assert len(await rig.fired("tick")) == 1 and len(rig.dispatched()) == 1
    await rig.clock.advance(10)
    await again.scheduler.tick()
    assert len(await rig.fired("tick")) == 2 and len(rig.dispatched()) == 2


async def test_a_brain_that_dispatched_but_did_not_record_fires_the_same_job_once() -> None:
    rig = Rig()
    await rig.scheduler.create("tick", {"every_seconds": 10, "job": JOB})
    await rig.clock.advance(10)
    state = rig.scheduler.schedules["tick"]
    slot = START + timedelta(seconds=10)
    # what a Brain that died between dispatching the slot's job and recording the slot did
    await rig.dispatcher.dispatch(parse_job_spec(JOB), job_id=slot_job_id("tick", slot))
    assert state.last_slot is None
    await rig.scheduler.tick()
    assert len(rig.dispatched()) == 1 and len(await rig.fired("tick")) == 1


async def test_two_brains_racing_fire_each_slot_once() -> None:
    first = Rig()
    await first.scheduler.create("tick", {"every_seconds": 5, "job": JOB})
    second = Rig(first.store, first.clock, first.queue)
    await second.scheduler.seed()
    for _ in range(6):
        await first.clock.advance(5)
        await first.scheduler.tick()
        await second.scheduler.tick()
    fired = await first.fired("tick")
    assert [f.slot for f in fired] == [START + timedelta(seconds=5 * i) for i in range(1, 7)]
    assert sorted(first.dispatched()) == sorted({f.job_id for f in fired})


async def test_paused_slots_are_skipped_not_missed_and_delete_stops_it() -> None:
    rig = Rig()
    await rig.scheduler.create("tick", {"every_seconds": 10, "job": JOB})
    await rig.scheduler.pause("tick")
    await rig.clock.advance(35)
    await rig.scheduler.tick()
    assert rig.dispatched() == []
    await rig.scheduler.resume("tick")
    await rig.scheduler.tick()
    assert rig.dispatched() == []  # the slots while paused do not fire on resume
    await rig.clock.advance(5)  # the slot at 40
    await rig.scheduler.tick()
    (fired,) = await rig.fired("tick")
    assert (fired.slot, fired.missed) == (START + timedelta(seconds=40), 0)
    await rig.scheduler.delete("tick")
    await rig.clock.advance(60)
    await rig.scheduler.tick()
    assert len(rig.dispatched()) == 1 and "tick" not in rig.scheduler.schedules


async def test_commands_that_do_not_fit_are_refused_with_a_status() -> None:
    rig = Rig()
    await rig.scheduler.create("tick", {"every_seconds": 10, "job": JOB})
    with pytest.raises(ScheduleRefused) as taken:
        await rig.scheduler.create("tick", {"every_seconds": 10, "job": JOB})
    assert taken.value.status == 409
    with pytest.raises(ScheduleRefused) as missing:
        await rig.scheduler.pause("nope")
    assert missing.value.status == 404
    await rig.scheduler.pause("tick")
    await rig.scheduler.pause("tick")  # pausing twice is a no-op, not an error


async def test_cron_schedules_fire_at_their_wall_clock_minutes() -> None:
    rig = Rig()
    await rig.scheduler.create("hourly", {"cron": "30 * * * *", "timezone": "Europe/Berlin",
                                          "job": JOB})  # fmt: skip
    await rig.clock.advance(29 * 60)
    await rig.scheduler.tick()
    assert rig.dispatched() == []
    await rig.clock.advance(60)
    await rig.scheduler.tick()
    (fired,) = await rig.fired("hourly")
    assert fired.slot == START + timedelta(minutes=30)
