"""Events of a job's timing (DESIGN §11): a delayed start, a retry after a backoff, and the
moment the Brain queues such a job."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from domain.events.job import FailureReason, JobEvent


class JobScheduled(JobEvent):
    """The job waits in `scheduled` until `run_at`; nothing is queued before then."""

    run_at: datetime


class JobRetryScheduled(JobEvent):
    """An attempt failed with attempts left: the job waits in `retrying` and runs again as
    `attempt` after `delay_seconds` (at `retry_at`). Its absence before a higher attempt's
    `JobReceived` marks a redelivery instead."""

    attempt: int = Field(ge=2)  # the attempt that will run next
    delay_seconds: float = Field(ge=0)
    retry_at: datetime | None = None
    reason: FailureReason
    error: str


class JobHeld(JobEvent):
    """The job's concurrency key has `concurrency_limit` jobs received or running (or queued
    for a worker): it waits, queued by the Brain but not for the workers, until one of them
    ends (`JobQueued` with cause `concurrency`). `attempt`: the message it will be queued as."""

    concurrency_key: str
    concurrency_limit: int = Field(ge=1)
    attempt: int = Field(default=1, ge=1)


class JobQueued(JobEvent):
    """A scheduled, retrying or held job came due and was queued again, as message `attempt`."""

    attempt: int = Field(ge=1)
    cause: Literal["runAt", "retry", "concurrency"]


TIMING_EVENTS: tuple[type[JobEvent], ...] = (JobScheduled, JobRetryScheduled, JobHeld, JobQueued)
