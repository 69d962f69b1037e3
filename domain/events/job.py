"""Events of the job aggregate (DESIGN §5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from domain.events.base import DomainEvent, JsonDict, upcaster

JobType = Literal["agent", "command", "http"]
FailureReason = Literal[
    "error",
    "max_deliveries",
    "stuck",
    "timeout",
    "dispatch_failed",
    "budget_exceeded",
    "approval_timeout",
]


class JobEvent(DomainEvent):
    aggregate: ClassVar[str] = "job"


class JobDispatched(JobEvent):
    """The Brain accepted a job and queued it; the payload has secrets redacted."""

    job_type: JobType
    payload: dict[str, Any]
    timeout_seconds: int | None = None
    reply_to: str | None = None
    created_at: datetime | None = None
    warnings: list[str] = Field(default_factory=list)
    rerun_of: str | None = None  # the job this one runs again (same spec)
    fork_of: dict[str, Any] | None = None  # {"jobId", "step"}: the agent job this one forks
    # The source's step events up to `fork_of.step` (`{"type", "data"}` documents), so the
    # fork's own history holds the conversation it continues.
    forked_steps: list[dict[str, Any]] | None = None
    schedule: dict[str, Any] | None = None  # {"name", "slot"}: the schedule slot that fired it
    labels: dict[str, str] | None = None  # DESIGN §11: stored on the job, filterable
    idempotency_key: str | None = None  # the client's key this job answers for (DESIGN §11)
    priority: str | None = None  # `high`/`normal`/`low` (DESIGN §11); None: normal
    retry: dict[str, Any] | None = None  # the retry policy (camelCase), DESIGN §11
    run_at: datetime | None = None  # a delayed job: queued at this time (`JobScheduled`)
    concurrency_key: str | None = None  # DESIGN §11: at most `concurrency_limit` at once
    concurrency_limit: int | None = None


class JobReceived(JobEvent):
    """A worker took the job (a higher attempt means a redelivery)."""

    schema_version: ClassVar[int] = 2
    worker_id: str | None = None
    attempt: int = Field(ge=1)


class JobStarted(JobEvent):
    """A worker began running the job."""

    worker_id: str | None = None
    attempt: int = Field(ge=1)
    progress: str | None = None


class JobProgressed(JobEvent):
    """A running job reported progress."""

    worker_id: str | None = None
    attempt: int = Field(ge=1)
    progress: str


class JobCompleted(JobEvent):
    """The job finished successfully."""

    worker_id: str | None = None
    attempt: int | None = None
    result: Any = None
    duration_ms: int | None = None


class JobResultRecorded(JobEvent):
    """A result arrived after the terminal status that had none."""

    result: Any = None
    error: str | None = None
    duration_ms: int | None = None


class JobFailed(JobEvent):
    """The job failed; `reason` says why (worker error, max deliveries, stuck, ...)."""

    schema_version: ClassVar[int] = 2
    reason: FailureReason
    error: str
    worker_id: str | None = None
    attempt: int | None = None
    duration_ms: int | None = None


class JobCancelRequested(JobEvent):
    """Someone asked for the job to be cancelled."""

    reason: str | None = None


class JobCancelled(JobEvent):
    """The job was stopped before it finished."""

    worker_id: str | None = None
    detail: str | None = None


JOB_EVENTS: tuple[type[JobEvent], ...] = (
    JobDispatched,
    JobReceived,
    JobStarted,
    JobProgressed,
    JobCompleted,
    JobResultRecorded,
    JobFailed,
    JobCancelRequested,
    JobCancelled,
)


@upcaster("JobReceived", 1)
def _received_v1(data: JsonDict) -> JsonDict:
    # Schema 1 predates redelivery tracking: every receipt was the first attempt.
    data.setdefault("attempt", 1)
    return data


_REASON_HINTS = (("max deliver", "max_deliveries"), ("stuck", "stuck"), ("timed out", "timeout"))


@upcaster("JobFailed", 1)
def _failed_v1(data: JsonDict) -> JsonDict:
    # Schema 1 had only a free-text error; schema 2 names the reason.
    text = str(data.get("error", "")).lower()
    data.setdefault("error", "")
    data["reason"] = next((r for hint, r in _REASON_HINTS if hint in text), "error")
    return data
