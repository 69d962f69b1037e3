"""The schedule lifecycle: active ↔ paused → deleted (→ created again), firing once per slot
while active.

A slot fires only after the last one fired, so a second Brain (or a restarted one) firing the
same slot again is refused by the lifecycle, and the append's optimistic concurrency check
lets only one of two racing firings in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from domain.commands import (
    CreateSchedule,
    DeleteSchedule,
    FireSchedule,
    PauseSchedule,
    Rejected,
    ResumeSchedule,
)
from domain.events import (
    DomainEvent,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleFired,
    SchedulePaused,
    ScheduleResumed,
    TransitionRejected,
)
from domain.lifecycle.machine import CompiledMachine, MachineSpec, t
from domain.lifecycle.simple import bump, fire_one

SPEC: Final = MachineSpec(
    name="schedule",
    states=("new", "active", "paused", "deleted"),
    initial="new",
    terminal=frozenset(),  # a deleted schedule's name may be used again
    transitions=(
        t("create", ("new", "deleted"), "active", "ScheduleCreated"),
        t("pause", "active", "paused", "SchedulePaused"),
        t("resume", "paused", "active", "ScheduleResumed"),
        t("delete", ("active", "paused"), "deleted", "ScheduleDeleted"),
        t("fire", "active", None, "ScheduleFired", "later_slot"),
    ),
    guards={"later_slot": "the slot is after the last slot fired"},
)


@dataclass(frozen=True, slots=True)
class ScheduleState:
    status: str = "new"
    version: int = 0
    cron: str | None = None
    every_seconds: int | None = None
    timezone: str = "UTC"
    job: dict[str, Any] | None = None
    created_at: datetime | None = None
    resumed_at: datetime | None = None  # slots before this were paused, not missed
    last_slot: datetime | None = None
    fired: int = 0


def _later_slot(state: ScheduleState, cmd: Any) -> bool:
    return state.last_slot is None or cmd.slot > state.last_slot


MACHINE: Final[CompiledMachine[ScheduleState, Any]] = CompiledMachine(
    SPEC, {"later_slot": _later_slot}
)
ScheduleCommand = CreateSchedule | PauseSchedule | ResumeSchedule | DeleteSchedule | FireSchedule


def decide(state: ScheduleState, cmd: ScheduleCommand) -> list[DomainEvent] | Rejected:
    if isinstance(cmd, CreateSchedule):
        return fire_one(MACHINE, state, "create", cmd, _created)
    if isinstance(cmd, PauseSchedule):
        return fire_one(MACHINE, state, "pause", cmd, lambda _s, c: SchedulePaused(reason=c.reason),
                        ("paused",))  # fmt: skip
    if isinstance(cmd, ResumeSchedule):
        return fire_one(MACHINE, state, "resume", cmd, lambda _s, c: ScheduleResumed(at=c.at),
                        ("active",))  # fmt: skip
    if isinstance(cmd, DeleteSchedule):
        return fire_one(MACHINE, state, "delete", cmd,
                        lambda _s, c: ScheduleDeleted(reason=c.reason), ("deleted",))  # fmt: skip
    if state.last_slot is not None and cmd.slot <= state.last_slot and state.status == "active":
        return []  # fired already (a restarted or a second Brain): nothing to record
    return fire_one(MACHINE, state, "fire", cmd, _fired)


def _created(_s: ScheduleState, c: CreateSchedule) -> DomainEvent:
    return ScheduleCreated(cron=c.cron, every_seconds=c.every_seconds, timezone=c.timezone,
                           job=c.job, created_at=c.created_at)  # fmt: skip


def _fired(_s: ScheduleState, c: FireSchedule) -> DomainEvent:
    return ScheduleFired(slot=c.slot, job_id=c.job_id, missed=c.missed)


_STATUS_AFTER: Final[dict[type[DomainEvent], str]] = {
    SchedulePaused: "paused",
    ScheduleDeleted: "deleted",
}


def evolve(state: ScheduleState, event: DomainEvent) -> ScheduleState:
    if isinstance(event, ScheduleCreated):
        return bump(
            state, status="active", cron=event.cron, every_seconds=event.every_seconds,
            timezone=event.timezone, job=event.job, created_at=event.created_at,
        )  # fmt: skip
    if isinstance(event, ScheduleFired):
        return bump(state, last_slot=event.slot, fired=state.fired + 1)
    if isinstance(event, ScheduleResumed):
        return bump(state, status="active", resumed_at=event.at)
    status = _STATUS_AFTER.get(type(event))
    if status is None and not isinstance(event, TransitionRejected):
        raise TypeError(f"{type(event).__name__} is not a schedule event")
    return bump(state, status=status or state.status)
