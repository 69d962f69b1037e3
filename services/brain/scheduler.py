"""Schedules (DESIGN §11): create, pause, resume, delete, and fire each slot exactly once.

The Brain keeps every schedule's state in memory, folded from the log when it starts leading
and updated by its own commands. Each tick fires the due slot of every active schedule: the
slot's job is dispatched first, with an id derived from the schedule and the slot, then
`ScheduleFired` is recorded. A Brain that stops between the two fires the slot again when it
(or the next Brain) comes back, and dispatching the same id again dispatches nothing; a second
Brain firing the same slot is refused by the lifecycle (only a later slot may fire) and by
the append's concurrency check, and its dispatch of the same id is a no-op as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from adapters.clock import SYSTEM_CLOCK
from adapters.eventstore import StoredEvent, StoreUnavailable
from domain import lifecycle
from domain.commands import (
    Command,
    CreateSchedule,
    DeleteSchedule,
    FireSchedule,
    PauseSchedule,
    ResumeSchedule,
)
from domain.lifecycle.schedule import ScheduleState
from domain.queue import QueueFull, QueueUnavailable
from domain.schedules import Due, due, next_slot, slot_job_id
from domain.specs import parse_job_spec
from services.brain.dispatcher import Dispatcher, DispatchFailed, Origin
from services.brain.leadership import Fenced
from services.executor import CommandExecutor, Outcome
from services.ports.clock import Clock, pause

log = logging.getLogger("baker.brain.schedules")


class ScheduleRefused(Exception):
    """The command does not fit the schedule's state; `status` 404 or 409 for the API."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Scheduler:
    def __init__(
        self,
        executor: CommandExecutor,
        dispatcher: Dispatcher,
        *,
        clock: Clock = SYSTEM_CLOCK,
        check_every: float = 1.0,
    ) -> None:
        self._executor = executor
        self._dispatcher = dispatcher
        self._clock = clock
        self.check_every = check_every
        self.schedules: dict[str, ScheduleState] = {}
        self.fired = 0
        self._firing = asyncio.Semaphore(64)  # slots fired at once (appends in flight)

    async def seed(self) -> int:
        """Fold every schedule event of the log (run when the Brain starts leading)."""
        states: dict[str, ScheduleState] = {}
        async for item in self._executor.store.read_all(1):
            if isinstance(item, StoredEvent) and item.envelope.aggregate == "schedule":
                env = item.envelope
                state = states.get(env.aggregate_id, ScheduleState())
                states[env.aggregate_id] = lifecycle.evolve("schedule", state, env.data)
        self.schedules = {k: v for k, v in states.items() if v.status != "deleted"}
        return len(self.schedules)

    async def run(self, stop: asyncio.Event) -> None:
        with contextlib.suppress(StoreUnavailable):
            log.info("watching %d schedules", await self.seed())
        while not stop.is_set():
            await self.tick()
            await pause(self._clock, self._pause_for(), stop)

    def _pause_for(self) -> float:
        """Until the next slot of any schedule (at most `check_every`)."""
        now = self._clock.wall()
        soonest = self.check_every
        for state in self.schedules.values():
            if state.status == "active" and state.created_at is not None:
                after = max(p for p in (state.last_slot, state.resumed_at, state.created_at) if p)
                wait = (next_slot(state, max(after, now)) - now).total_seconds()
                soonest = min(soonest, max(wait, 0.0))
        return soonest

    async def tick(self) -> None:
        """Fire the due slot of every active schedule, concurrently: each is its own
        aggregate and its own job, and one after the other a hundred due at once would fire
        the last a whole round trip chain late."""
        now = self._clock.wall()
        due_now = [(n, s, d) for n, s in list(self.schedules.items()) if (d := due(s, now))]
        if due_now:
            await asyncio.gather(*(self._fire_guarded(*item) for item in due_now))

    async def _fire_guarded(self, name: str, state: ScheduleState, slot: Due) -> None:
        async with self._firing:
            with contextlib.suppress(Fenced, StoreUnavailable):
                await self._fire(name, state, slot)

    async def _fire(self, name: str, state: ScheduleState, slot: Due) -> None:
        job_id = slot_job_id(name, slot.slot)
        assert state.job is not None
        try:
            await self._dispatcher.dispatch(
                parse_job_spec(state.job), job_id=job_id,
                origin=Origin(schedule={"name": name, "slot": slot.slot.isoformat()}),
            )  # fmt: skip
        except (QueueFull, QueueUnavailable, DispatchFailed) as exc:
            log.warning("schedule %s: slot %s not dispatched: %s", name, slot.slot, exc)
            if isinstance(exc, QueueFull):
                return  # not recorded: the slot fires on a later tick
        outcome = await self._execute(name, FireSchedule(slot.slot, job_id, slot.missed))
        if outcome.changed and outcome.rejected is None:
            self.fired += 1
            if slot.missed:
                log.warning("schedule %s: %d missed slots fired once", name, slot.missed)

    async def _execute(self, name: str, cmd: Command) -> Outcome:
        outcome = await self._executor.execute("schedule", name, cmd)
        if outcome.state.status == "deleted":
            self.schedules.pop(name, None)
        elif outcome.state.status != "new":
            self.schedules[name] = outcome.state
        return outcome

    async def _command(self, name: str, cmd: Command) -> ScheduleState:
        outcome = await self._execute(name, cmd)
        if outcome.rejected is not None:
            gone = outcome.position.version == 0 or outcome.state.status == "deleted"
            status = 404 if gone and not isinstance(cmd, CreateSchedule) else 409
            raise ScheduleRefused(status, outcome.rejected.reason)
        state: ScheduleState = outcome.state
        return state

    async def create(self, name: str, fields: dict[str, Any]) -> ScheduleState:
        return await self._command(name, CreateSchedule(created_at=self._clock.wall(), **fields))

    async def pause(self, name: str, reason: str | None = None) -> ScheduleState:
        return await self._command(name, PauseSchedule(reason))

    async def resume(self, name: str) -> ScheduleState:
        return await self._command(name, ResumeSchedule(at=self._clock.wall()))

    async def delete(self, name: str, reason: str | None = None) -> ScheduleState:
        return await self._command(name, DeleteSchedule(reason))


def schedule_document(name: str, state: ScheduleState, now: datetime) -> dict[str, Any]:
    """A schedule as the API shows it."""
    doc: dict[str, Any] = {
        "name": name, "status": state.status, "cron": state.cron,
        "everySeconds": state.every_seconds, "timezone": state.timezone, "job": state.job,
        "fired": state.fired,
        "lastSlot": state.last_slot.isoformat() if state.last_slot else None,
        "createdAt": state.created_at.isoformat() if state.created_at else None,
    }  # fmt: skip
    if state.status == "active" and state.created_at is not None:
        after = max(p for p in (state.last_slot, state.resumed_at, state.created_at) if p)
        doc["nextSlot"] = next_slot(state, max(after, now)).isoformat()
    return {k: v for k, v in doc.items() if v is not None}
