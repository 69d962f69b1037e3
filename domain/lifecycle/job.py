"""The job lifecycle: dispatched → received → running → completed | failed | cancelled, and
for agent jobs waiting for an operator, running → waiting → dispatched (DESIGN §5, §10); a
delayed job starts `scheduled`, a failed attempt with attempts left goes `retrying`, both then
`dispatched` when the Brain queues them (§11, `domain.lifecycle.timing`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from domain.commands import (
    AnswerApproval,
    DispatchJob,
    FailJob,
    HoldJob,
    QueueJob,
    RecordStatus,
    RecordStep,
    Rejected,
    RequestCancel,
)
from domain.events import (
    AgentApprovalDenied,
    AgentApprovalGranted,
    AgentApprovalRequested,
    AgentModelCalled,
    AgentToolCalled,
    AgentToolReturned,
    DomainEvent,
    JobBudgetExceeded,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobDispatched,
    JobFailed,
    JobHeld,
    JobProgressed,
    JobQueued,
    JobReceived,
    JobResultRecorded,
    JobRetryScheduled,
    JobScheduled,
    JobStarted,
    TransitionRejected,
)
from domain.lifecycle.machine import CompiledMachine, MachineSpec, t
from domain.lifecycle.steps import (
    STEP_GUARD_TEXT,
    STEP_GUARDS,
    STEP_TRIGGERS,
    approval_events,
    approval_rejection,
    forked_steps,
    is_duplicate_step,
    step_event,
    step_rejection,
    tool_uses,
)
from domain.lifecycle.timing import (
    TIMING_GUARD_TEXT,
    WAITING_TO_RUN,
    queued_event,
    retry_allowed,
    retry_event,
)
from domain.specs import concurrency_of, redacted_payload, retry_policy_document, spec_warnings

ACTIVE: Final = ("dispatched", "received", "running", "waiting")
TERMINAL: Final = frozenset({"completed", "failed", "cancelled"})

SPEC: Final = MachineSpec(
    name="job",
    states=("new", *WAITING_TO_RUN, *ACTIVE, *sorted(TERMINAL)),
    initial="new",
    terminal=TERMINAL,
    transitions=(
        t("dispatch", "new", "dispatched", "JobDispatched"),
        # a delayed job: `JobDispatched` (its spec) then `JobScheduled`, in one decision
        t("schedule", "new", "scheduled", "JobScheduled", "starts_later"),
        t("queue", WAITING_TO_RUN, "dispatched", "JobQueued"),
        # a concurrency key at its limit: queued by the Brain, not yet for the workers
        t("hold", "dispatched", None, "JobHeld", "not_held"),
        t("queue", "dispatched", None, "JobQueued", "held"),
        t(
            "retry",
            ("dispatched", "received", "running"),
            "retrying",
            "JobRetryScheduled",
            "retry_allowed",
        ),
        t("fail", WAITING_TO_RUN, "failed", "JobFailed", "not_stale"),
        t("request_cancel", WAITING_TO_RUN, None, "JobCancelRequested", "not_cancel_requested"),
        t("cancel", WAITING_TO_RUN, "cancelled", "JobCancelled"),
        t("receive", "dispatched", "received", "JobReceived"),
        t("receive", ("received", "running"), "received", "JobReceived", "higher_attempt"),
        t("start", "dispatched", "running", "JobStarted"),
        t("start", "received", "running", "JobStarted", "not_stale"),
        t("start", "running", "running", "JobStarted", "higher_attempt"),
        t("progress", "running", None, "JobProgressed", "new_progress"),
        t("complete", "running", "completed", "JobCompleted"),
        t("fail", ACTIVE, "failed", "JobFailed", "not_stale"),
        t("request_cancel", ACTIVE, None, "JobCancelRequested", "not_cancel_requested"),
        t("cancel", ACTIVE, "cancelled", "JobCancelled"),
        t("record_result", ("completed", "failed"), None, "JobResultRecorded", "adds_result"),
        t("call_model", "running", None, "AgentModelCalled", "model_may_follow"),
        t("call_tool", "running", None, "AgentToolCalled", "tool_may_be_called"),
        t("return_tool", "running", None, "AgentToolReturned", "tool_may_return"),
        t("request_approval", "running", "waiting", "AgentApprovalRequested", "tool_may_be_called"),
        t("approve", "waiting", "dispatched", "AgentApprovalGranted", "answers_the_request"),
        t("deny", "waiting", "dispatched", "AgentApprovalDenied", "answers_the_request"),
    ),
    guards={
        "higher_attempt": "the report's attempt is higher than the job's (a redelivery)",
        "not_stale": "the report is not from an earlier attempt",
        "new_progress": "same attempt, and the progress text changed",
        "not_cancel_requested": "no cancel was requested yet",
        "adds_result": "the terminal event had no result and this report brings one",
        "not_held": "the job is not already held by its concurrency key",
        "held": "the job is held by its concurrency key",
        **STEP_GUARD_TEXT,
        **TIMING_GUARD_TEXT,
    },
)


@dataclass(frozen=True, slots=True)
class JobState:
    status: str = "new"
    version: int = 0
    job_type: str | None = None
    attempt: int = 0
    worker_id: str | None = None
    progress: str | None = None
    cancel_requested: bool = False
    has_result: bool = False
    timeout_seconds: int | None = None
    steps: int = 0  # the last recorded step of an agent job
    pending: tuple[str, ...] = ()  # tool uses the last model reply asked for, not yet returned
    open_call: str | None = None  # the tool call recorded and not yet returned
    awaiting: str | None = None  # the tool call waiting for an operator's approval
    approval_timeout: int | None = None  # seconds a job may wait for an approval
    retry: dict[str, Any] | None = None  # the retry policy of `JobDispatched` (camelCase)
    retries: int = 0  # `JobRetryScheduled` events so far: the job has run retries+1 times
    retry_attempt: int = 0  # the attempt a retry runs as: reports of earlier ones are stale
    due_at: datetime | None = None  # when a scheduled or retrying job is to be queued
    concurrency_key: str | None = None  # DESIGN §11
    concurrency_limit: int | None = None
    held: int = 0  # held by its concurrency key: the attempt it will be queued as; 0: not held

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


JobCommand = (
    DispatchJob | RecordStatus | RecordStep | RequestCancel | FailJob | AnswerApproval | HoldJob
)
_STATUS_TRIGGERS: Final = {
    "received": ("receive",),
    "running": ("start", "progress"),
    "completed": ("complete", "record_result"),
    "failed": ("retry", "fail", "record_result"),
    "cancelled": ("cancel",),
}


def _attempt(state: JobState, cmd: object) -> int:
    attempt = getattr(cmd, "attempt", None)
    return attempt if attempt is not None else max(state.attempt, state.retry_attempt, 1)


def _higher_attempt(state: JobState, cmd: object) -> bool:
    attempt = getattr(cmd, "attempt", None)
    return attempt is not None and attempt > state.attempt


def _not_stale(state: JobState, cmd: object) -> bool:
    attempt = getattr(cmd, "attempt", None)
    return attempt is None or attempt >= max(state.attempt, state.retry_attempt)


def _new_progress(state: JobState, cmd: object) -> bool:
    progress = getattr(cmd, "progress", None)
    return _attempt(state, cmd) == state.attempt and progress not in (None, state.progress)


def _adds_result(state: JobState, cmd: object) -> bool:
    return (
        isinstance(cmd, RecordStatus)
        and cmd.status == state.status
        and cmd.result is not None
        and not state.has_result
    )


MACHINE: Final[CompiledMachine[JobState, Any]] = CompiledMachine(
    SPEC,
    {
        "higher_attempt": _higher_attempt,
        "not_stale": _not_stale,
        "new_progress": _new_progress,
        "not_cancel_requested": lambda s, _c: not s.cancel_requested,
        "adds_result": _adds_result,
        "not_held": lambda s, _c: not s.held,
        "held": lambda s, _c: bool(s.held),
        **STEP_GUARDS,
        "starts_later": lambda _s, c: getattr(c, "start_at", None) is not None,
        "retry_allowed": lambda s, c: _not_stale(s, c) and retry_allowed(s, c),
    },
)


def decide(state: JobState, cmd: JobCommand) -> list[DomainEvent] | Rejected:
    """What happens when `cmd` meets a job in `state`: new events, none, or a rejection."""
    special = _DECIDERS.get(type(cmd))
    if special is not None:
        return special(state, cmd)
    timed = _timed(state, cmd)
    if timed is not None:
        return timed
    trigger = _TRIGGER[type(cmd)]
    if MACHINE.fire(state.status, trigger, state, cmd) is not None:
        if isinstance(cmd, RequestCancel) and (state.status in _UNHELD or state.held):
            # no worker holds a waiting, scheduled, retrying or held job: nobody else would
            # stop it
            detail = _UNHELD["held" if state.held else state.status]
            return [JobCancelRequested(reason=cmd.reason), JobCancelled(detail=detail)]
        return [_EVENT_FOR[trigger](state, cmd)]
    duplicate = (
        (isinstance(cmd, (DispatchJob, QueueJob)) and state.status != "new")
        or (isinstance(cmd, HoldJob) and bool(state.held))
    ) or (isinstance(cmd, RequestCancel) and state.cancel_requested and not state.terminal)
    if duplicate:
        return []
    return _reject(state, trigger, cmd)


def _timed(state: JobState, cmd: JobCommand) -> list[DomainEvent] | None:
    """A failure that a retry policy retries, or a dispatch that starts later; else None."""
    if isinstance(cmd, FailJob) and MACHINE.fire(state.status, "retry", state, cmd) is not None:
        return [retry_event(state, cmd)]
    if isinstance(cmd, DispatchJob) and MACHINE.fire(state.status, "schedule", state, cmd):
        assert cmd.start_at is not None  # the guard said so
        return [_dispatched(state, cmd), JobScheduled(run_at=cmd.start_at)]
    return None


def _retried_failure(state: JobState, cmd: RecordStatus) -> bool:
    """The failure a retry was scheduled for, reported again (a status, then a result)."""
    if cmd.status != "failed":
        return False
    if cmd.attempt is None:  # a worker that sends no attempt
        return state.status == "retrying"
    return cmd.attempt < state.retry_attempt


_TRIGGER: Final[dict[type[Any], str]] = {
    DispatchJob: "dispatch",
    RequestCancel: "request_cancel",
    FailJob: "fail",
    QueueJob: "queue",
    HoldJob: "hold",
}
_UNHELD: Final = {
    "waiting": "cancelled while waiting for approval",
    "scheduled": "cancelled before its start time; it never ran",
    "retrying": "cancelled while waiting to retry",
    "held": "cancelled while held by its concurrency key; it never ran",
}


def _decide_approval(state: JobState, cmd: AnswerApproval) -> list[DomainEvent] | Rejected:
    trigger = "approve" if cmd.approve else "deny"
    if MACHINE.fire(state.status, trigger, state, cmd) is None:
        detail = {"command": cmd.type_name, "toolUseId": cmd.tool_use_id}
        return Rejected(state.status, trigger, approval_rejection(state, cmd), detail)
    return approval_events(state, cmd)


def _decide_step(state: JobState, cmd: RecordStep) -> list[DomainEvent] | Rejected:
    trigger = STEP_TRIGGERS[cmd.kind]
    if MACHINE.fire(state.status, trigger, state, cmd) is not None:
        return [step_event(cmd)]
    if state.status == "running" and is_duplicate_step(state, cmd) and cmd.attempt <= state.attempt:
        return []  # recorded already (a redelivered message, or a resumed worker's repeat)
    if state.status != "running":
        return _reject(state, trigger, cmd)
    detail = {"command": cmd.type_name, "step": cmd.step, "kind": cmd.kind, "attempt": cmd.attempt}
    return Rejected(state.status, trigger, step_rejection(state, cmd), detail)


def _decide_status(state: JobState, cmd: RecordStatus) -> list[DomainEvent] | Rejected:
    if _retried_failure(state, cmd):
        return []
    for trigger in _STATUS_TRIGGERS[cmd.status]:
        if MACHINE.fire(state.status, trigger, state, cmd) is not None:
            if trigger == "fail" and cmd.reason == "budget_exceeded" and cmd.budget:
                return [_budget_exceeded(cmd.budget), _EVENT_FOR[trigger](state, cmd)]
            if trigger == "retry":
                return [retry_event(state, cmd)]
            return [_EVENT_FOR[trigger](state, cmd)]
    if cmd.status == state.status and (state.terminal or _attempt(state, cmd) == state.attempt):
        return []  # a duplicate of the current status
    return _reject(state, cmd.status, cmd)


_DECIDERS: Final[dict[type[Any], Callable[[JobState, Any], list[DomainEvent] | Rejected]]] = {
    RecordStatus: _decide_status,
    RecordStep: _decide_step,
    AnswerApproval: _decide_approval,
}


def _reject(state: JobState, attempted: str, cmd: JobCommand) -> Rejected:
    attempt = getattr(cmd, "attempt", None)
    if state.status == "new":
        reason = "no such job"
    elif state.terminal:
        reason = f"job is already {state.status}; terminal states absorb"
    elif attempt is not None and attempt < state.attempt:
        reason = f"stale report from attempt {attempt}; the job is on attempt {state.attempt}"
    elif attempt is not None and attempt == state.attempt and attempted == "received":
        reason = f"late 'received' for attempt {attempt} while {state.status}"
    else:
        reason = f"illegal transition {state.status} -> {attempted}"
    detail: dict[str, Any] = {"command": cmd.type_name}
    for key in ("status", "attempt", "worker_id", "source", "reason"):
        value = getattr(cmd, key, None)
        if value is not None:
            detail[key] = value
    return Rejected(state.status, attempted, reason, detail)


def _dispatched(_s: JobState, c: Any) -> DomainEvent:
    return JobDispatched(
        job_type=c.spec.type,
        payload=redacted_payload(c.spec),
        timeout_seconds=c.spec.timeout_seconds,
        reply_to=c.reply_to,
        created_at=c.created_at,
        warnings=spec_warnings(c.spec),
        rerun_of=c.rerun_of,
        fork_of=c.fork_of,
        forked_steps=list(c.forked_steps) or None,
        schedule=c.schedule,
        labels=c.spec.labels or None,
        idempotency_key=c.spec.idempotency_key,
        priority=c.spec.priority,
        retry=retry_policy_document(c.spec),
        run_at=c.start_at,
        concurrency_key=concurrency_of(c.spec)[0],
        concurrency_limit=concurrency_of(c.spec)[1],
    )


def _budget_exceeded(budget: dict[str, Any]) -> DomainEvent:
    return JobBudgetExceeded(
        limit=str(budget.get("limit", "")),
        allowed=float(budget.get("allowed", 0)),
        used=float(budget.get("used", 0)),
        projected=float(budget.get("projected", 0)),
    )


_EVENT_FOR: Final[dict[str, Callable[[JobState, Any], DomainEvent]]] = {
    "dispatch": _dispatched,
    "receive": lambda s, c: JobReceived(worker_id=c.worker_id, attempt=_attempt(s, c)),
    "start": lambda s, c: JobStarted(
        worker_id=c.worker_id, attempt=_attempt(s, c), progress=c.progress
    ),
    "progress": lambda s, c: JobProgressed(
        worker_id=c.worker_id, attempt=_attempt(s, c), progress=c.progress
    ),
    "complete": lambda s, c: JobCompleted(
        worker_id=c.worker_id, attempt=c.attempt, result=c.result, duration_ms=c.duration_ms
    ),
    "fail": lambda s, c: JobFailed(
        reason=getattr(c, "reason", None) or "error",
        error=c.error or "the worker reported a failure without an error message",
        worker_id=getattr(c, "worker_id", None),
        attempt=getattr(c, "attempt", None),
        duration_ms=getattr(c, "duration_ms", None),
    ),
    "request_cancel": lambda s, c: JobCancelRequested(reason=c.reason),
    "queue": lambda s, c: queued_event(s),
    # never an attempt below a retry's: attempts only grow
    "hold": lambda s, c: JobHeld(
        concurrency_key=c.concurrency_key,
        concurrency_limit=c.concurrency_limit,
        attempt=max(c.attempt, s.retry_attempt, 1),
    ),
    "cancel": lambda s, c: JobCancelled(worker_id=c.worker_id, detail=c.error or c.progress),
    "record_result": lambda s, c: JobResultRecorded(
        result=c.result, error=c.error, duration_ms=c.duration_ms
    ),
}


def evolve(state: JobState, event: DomainEvent) -> JobState:
    """The job state after `event`; every event, rejected transitions too, bumps the version."""
    fold = _FOLDS.get(type(event))
    if fold is None:
        raise TypeError(f"{type(event).__name__} is not a job event")
    return fold(state, event)


def _bump(s: JobState, **changes: Any) -> JobState:
    # `dataclasses.replace` without its per-field loop (four of these per job in the Brain);
    # a test checks that every field of `JobState` is carried over.
    values: dict[str, Any] = {
        "status": s.status,
        "version": s.version + 1,
        "job_type": s.job_type,
        "attempt": s.attempt,
        "worker_id": s.worker_id,
        "progress": s.progress,
        "cancel_requested": s.cancel_requested,
        "has_result": s.has_result,
        "timeout_seconds": s.timeout_seconds,
        "steps": s.steps,
        "pending": s.pending,
        "open_call": s.open_call,
        "awaiting": s.awaiting,
        "approval_timeout": s.approval_timeout,
        "retry": s.retry,
        "retries": s.retries,
        "retry_attempt": s.retry_attempt,
        "due_at": s.due_at,
        "concurrency_key": s.concurrency_key,
        "concurrency_limit": s.concurrency_limit,
        "held": s.held,
    }
    values.update(changes)
    return JobState(**values)


_FOLDS: Final[dict[type[DomainEvent], Callable[[JobState, Any], JobState]]] = {
    JobDispatched: lambda s, e: _fold_dispatched(s, e),  # noqa: PLW0108 - defined below
    # a job a worker reports on holds its slot, whatever the gate thought (held=0)
    JobReceived: lambda s, e: _bump(
        s, status="received", attempt=e.attempt, worker_id=e.worker_id, progress=None, held=0
    ),
    JobStarted: lambda s, e: _bump(
        s,
        status="running",
        attempt=e.attempt,
        worker_id=e.worker_id,
        progress=e.progress,
        held=0,
    ),
    JobProgressed: lambda s, e: _bump(s, progress=e.progress),
    JobCompleted: lambda s, e: _bump(s, status="completed", has_result=e.result is not None),
    JobResultRecorded: lambda s, e: _bump(s, has_result=True),
    JobFailed: lambda s, e: _bump(s, status="failed"),
    JobCancelRequested: lambda s, e: _bump(s, cancel_requested=True),
    JobCancelled: lambda s, e: _bump(s, status="cancelled"),
    TransitionRejected: lambda s, e: _bump(s),
    AgentModelCalled: lambda s, e: _bump(
        s, steps=e.step, pending=tool_uses(e.content) if e.stop_reason == "tool_use" else ()
    ),
    AgentToolCalled: lambda s, e: _bump(s, steps=e.step, open_call=e.tool_use_id),
    AgentToolReturned: lambda s, e: _bump(
        s, steps=e.step, open_call=None, pending=tuple(p for p in s.pending if p != e.tool_use_id)
    ),
    JobBudgetExceeded: lambda s, e: _bump(s),
    AgentApprovalRequested: lambda s, e: _bump(
        s, status="waiting", steps=e.step, awaiting=e.tool_use_id
    ),
    AgentApprovalGranted: lambda s, e: _bump(s, status="dispatched", awaiting=None),
    AgentApprovalDenied: lambda s, e: _bump(s, status="dispatched", awaiting=None),
    JobScheduled: lambda s, e: _bump(s, status="scheduled", due_at=e.run_at),
    JobRetryScheduled: lambda s, e: _bump(
        s,
        status="retrying",
        retries=s.retries + 1,
        retry_attempt=e.attempt,
        due_at=e.retry_at,
        progress=None,
    ),
    JobHeld: lambda s, e: _bump(s, held=e.attempt),
    JobQueued: lambda s, e: _bump(s, status="dispatched", due_at=None, held=0),
}


def _fold_dispatched(s: JobState, e: JobDispatched) -> JobState:
    timeout = e.payload.get("approvalTimeoutSeconds") if e.job_type == "agent" else None
    state = _bump(
        s, status="dispatched", job_type=e.job_type, timeout_seconds=e.timeout_seconds,
        approval_timeout=timeout if isinstance(timeout, int) else None, retry=e.retry,
        concurrency_key=e.concurrency_key, concurrency_limit=e.concurrency_limit,
    )  # fmt: skip
    for step in forked_steps(e):  # a fork starts where its source's copied steps end
        state = replace(_FOLDS[type(step)](state, step), version=state.version)
    return state
