"""Events of the schedule aggregate (DESIGN §11): a named schedule that dispatches a job per
slot of its cron expression or interval."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from domain.events.base import DomainEvent


class ScheduleEvent(DomainEvent):
    aggregate: ClassVar[str] = "schedule"


class ScheduleCreated(ScheduleEvent):
    """`cron` (5 fields, in `timezone`) or `every_seconds`; `job` is the spec it dispatches
    (secrets masked as in `JobDispatched`)."""

    cron: str | None = None
    every_seconds: int | None = Field(default=None, ge=1)
    timezone: str = "UTC"
    job: dict[str, Any]
    created_at: datetime


class SchedulePaused(ScheduleEvent):
    reason: str | None = None


class ScheduleResumed(ScheduleEvent):
    at: datetime


class ScheduleDeleted(ScheduleEvent):
    reason: str | None = None


class ScheduleFired(ScheduleEvent):
    """The job of one slot was dispatched; `missed` slots before it were folded into it."""

    slot: datetime
    job_id: str
    missed: int = Field(default=0, ge=0)


SCHEDULE_EVENTS: tuple[type[ScheduleEvent], ...] = (
    ScheduleCreated,
    SchedulePaused,
    ScheduleResumed,
    ScheduleDeleted,
    ScheduleFired,
)
