"""Commands: what callers ask an aggregate to do. The lifecycle decides what happens."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from domain.events.job import FailureReason
from domain.specs import AgentJob, CommandJob, HttpJob
from domain.wire import WorkerStatus


@dataclass(frozen=True, slots=True)
class Command:
    aggregate: ClassVar[str] = ""

    @property
    def type_name(self) -> str:
        return type(self).__name__


# --- jobs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DispatchJob(Command):
    aggregate: ClassVar[str] = "job"
    spec: AgentJob | CommandJob | HttpJob
    reply_to: str | None = None
    created_at: datetime | None = None
    rerun_of: str | None = None  # the job this one runs again
    fork_of: dict[str, Any] | None = None  # {jobId, step}: the agent job this one forks
    forked_steps: tuple[dict[str, Any], ...] = ()  # the source's step events it starts with
    schedule: dict[str, Any] | None = None  # {name, slot}: the schedule slot that fired it
    start_at: datetime | None = None  # a delayed job: `JobScheduled` until then


@dataclass(frozen=True, slots=True)
class RecordStatus(Command):
    """A worker's status or result message, as the ingest saw it."""

    aggregate: ClassVar[str] = "job"
    status: WorkerStatus
    worker_id: str | None = None
    attempt: int | None = None
    progress: str | None = None
    error: str | None = None
    result: Any = None
    duration_ms: int | None = None
    source: Literal["status", "result"] = "status"
    reason: FailureReason | None = None  # a failure's reason, when the worker names one
    budget: dict[str, Any] | None = None  # what a `budget_exceeded` failure passed
    at: datetime | None = None  # when it was seen: a retry's backoff counts from here


@dataclass(frozen=True, slots=True)
class RecordStep(Command):
    """One step of an agent job (a model call, a tool call or a tool's return), as ingested."""

    aggregate: ClassVar[str] = "job"
    attempt: int
    step: int
    kind: Literal["model", "toolCall", "toolResult", "approval"]
    worker_id: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    content: tuple[dict[str, Any], ...] = ()
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    duration_ms: int | None = None
    tool_use_id: str | None = None
    tool: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class AnswerApproval(Command):
    """An operator's answer to a tool call waiting for approval."""

    aggregate: ClassVar[str] = "job"
    tool_use_id: str
    approve: bool
    note: str | None = None
    by: str | None = None


@dataclass(frozen=True, slots=True)
class RequestCancel(Command):
    aggregate: ClassVar[str] = "job"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FailJob(Command):
    """The Brain fails a job on its own authority (max deliveries, stuck, dispatch failed)."""

    aggregate: ClassVar[str] = "job"
    reason: FailureReason
    error: str
    at: datetime | None = None  # when: a retry's backoff counts from here


@dataclass(frozen=True, slots=True)
class HoldJob(Command):
    """The job's concurrency key is at its limit: it waits for a slot (the Brain's gate)."""

    aggregate: ClassVar[str] = "job"
    concurrency_key: str
    concurrency_limit: int
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class QueueJob(Command):
    """A scheduled or retrying job is due: queue it (the Brain's timer, DESIGN §11)."""

    aggregate: ClassVar[str] = "job"


# --- schedules ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateSchedule(Command):
    aggregate: ClassVar[str] = "schedule"
    job: dict[str, Any]  # the job spec document, validated and masked
    created_at: datetime
    cron: str | None = None
    every_seconds: int | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class PauseSchedule(Command):
    aggregate: ClassVar[str] = "schedule"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ResumeSchedule(Command):
    aggregate: ClassVar[str] = "schedule"
    at: datetime


@dataclass(frozen=True, slots=True)
class DeleteSchedule(Command):
    aggregate: ClassVar[str] = "schedule"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FireSchedule(Command):
    aggregate: ClassVar[str] = "schedule"
    slot: datetime
    job_id: str
    missed: int = 0


# --- tasks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaunchTask(Command):
    aggregate: ClassVar[str] = "task"
    goal: str
    mode: Literal["agent", "script"]
    timeout_seconds: int
    toolbox: str | None = None
    launcher: str = "local"
    deadline_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RecordTaskStatus(Command):
    aggregate: ClassVar[str] = "task"
    status: Literal["running", "progress", "completed", "failed", "timeout", "cancelled"]
    message: str | None = None
    kind: str = "log"
    result: Any = None
    error: str | None = None
    duration_ms: int | None = None
    runner_id: str | None = None


@dataclass(frozen=True, slots=True)
class TimeOutTask(Command):
    aggregate: ClassVar[str] = "task"
    timeout_seconds: int


@dataclass(frozen=True, slots=True)
class CancelTask(Command):
    aggregate: ClassVar[str] = "task"
    reason: str | None = None


# --- extensions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnnounceExtension(Command):
    aggregate: ClassVar[str] = "extension"
    name: str
    version: str
    mcp_url: str
    description: str = ""
    tools: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class RecordHeartbeat(Command):
    aggregate: ClassVar[str] = "extension"


@dataclass(frozen=True, slots=True)
class MarkExtensionOffline(Command):
    aggregate: ClassVar[str] = "extension"
    last_seen: datetime | None = None
    missed_heartbeats: int = 3


@dataclass(frozen=True, slots=True)
class RecordTools(Command):
    aggregate: ClassVar[str] = "extension"
    tools: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class DeregisterExtension(Command):
    aggregate: ClassVar[str] = "extension"
    reason: str | None = None


# --- services, brains, handoffs ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportServiceHealth(Command):
    aggregate: ClassVar[str] = "service"
    up: bool
    service: str
    instance: str
    version: str | None = None
    reason: str = ""
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class StartBrain(Command):
    aggregate: ClassVar[str] = "brain"
    role: Literal["active", "pending"]
    version: str


@dataclass(frozen=True, slots=True)
class ActivateBrain(Command):
    aggregate: ClassVar[str] = "brain"
    generation: int
    fresh_start: bool = False


@dataclass(frozen=True, slots=True)
class DrainBrain(Command):
    aggregate: ClassVar[str] = "brain"
    handoff_id: str


@dataclass(frozen=True, slots=True)
class ResumeBrain(Command):
    aggregate: ClassVar[str] = "brain"
    handoff_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ShutDownBrain(Command):
    aggregate: ClassVar[str] = "brain"
    reason: str


@dataclass(frozen=True, slots=True)
class RequestHandoff(Command):
    aggregate: ClassVar[str] = "handoff"
    to_instance: str
    to_version: str
    generation: int
    from_instance: str | None = None


@dataclass(frozen=True, slots=True)
class StartHandoffDrain(Command):
    aggregate: ClassVar[str] = "handoff"
    from_instance: str
    from_version: str | None = None


@dataclass(frozen=True, slots=True)
class CompleteHandoff(Command):
    aggregate: ClassVar[str] = "handoff"
    generation: int


@dataclass(frozen=True, slots=True)
class AbortHandoff(Command):
    aggregate: ClassVar[str] = "handoff"
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A command the lifecycle refused, with the reason; recorded as `TransitionRejected`."""

    from_state: str
    attempted: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


# --- the queue (DESIGN §11) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PauseQueue(Command):
    """Workers take nothing new; running jobs finish."""

    aggregate: ClassVar[str] = "queue"
    by: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ResumeQueue(Command):
    aggregate: ClassVar[str] = "queue"
    by: str | None = None
    reason: str | None = None
