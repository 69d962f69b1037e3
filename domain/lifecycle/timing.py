"""The timing part of the job lifecycle (DESIGN §11): which failures are retried, after which
backoff, and the events that say so. Pure: the time a backoff counts from comes with the
command (`at`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from domain.events import JobQueued, JobRetryScheduled

# States in which a job waits for the Brain's timer: no message is queued, no worker holds it.
WAITING_TO_RUN: Final = ("scheduled", "retrying")

# Failures that a retry policy retries: the attempt went wrong while running (the worker said
# so, it timed out, it went silent, or JetStream gave up redelivering it). Not retried: a
# cancel (not a failure), `budget_exceeded` (a retry would spend more of what is used up),
# `dispatch_failed` (the queue refused it; the client is told at once) and `approval_timeout`
# (nobody answered; running it again asks again).
RETRYABLE: Final = frozenset({"error", "timeout", "stuck", "max_deliveries"})

TIMING_GUARD_TEXT: Final = {
    "starts_later": "the job has a start time (runAt/delaySeconds) still to come",
    "retry_allowed": (
        "not stale, no cancel requested, the job has a retry policy with attempts left, and "
        "the failure's reason is one it retries (error, timeout, stuck, max_deliveries)"
    ),
}


def backoff(policy: dict[str, Any], retry: int) -> float:
    """Seconds before retry number `retry` (1 for the first): the initial delay times the
    multiplier per earlier retry, capped at maxSeconds."""
    initial = float(policy.get("initialSeconds", 1.0))
    multiplier = float(policy.get("multiplier", 2.0))
    cap = float(policy.get("maxSeconds", 3_600.0))
    if initial <= 0:
        return 0.0
    delay = initial
    for _ in range(retry - 1):  # a loop, not `**`: stops at the cap instead of overflowing
        if delay >= cap:
            break
        delay *= multiplier
    return min(delay, cap)


def retry_allowed(state: Any, cmd: Any) -> bool:
    """Whether this failure of `state`'s job is retried instead of failing it."""
    policy = state.retry
    if not policy or state.cancel_requested:
        return False
    reason = getattr(cmd, "reason", None) or "error"
    return reason in RETRYABLE and state.retries + 1 < int(policy.get("maxAttempts", 1))


def retry_event(state: Any, cmd: Any) -> JobRetryScheduled:
    """The retry of `state`'s job that `cmd` (a failure) schedules."""
    delay = backoff(state.retry or {}, state.retries + 1)
    at = getattr(cmd, "at", None)
    return JobRetryScheduled(
        attempt=next_attempt(state),
        delay_seconds=delay,
        retry_at=None if at is None else at + timedelta(seconds=delay),
        reason=getattr(cmd, "reason", None) or "error",
        error=getattr(cmd, "error", None) or "the worker reported a failure without an error",
    )


def next_attempt(state: Any) -> int:
    """The attempt a retry runs as: its message gets an id of its own (`dispatch_msg_id`)."""
    # a retry that failed before any worker reported on it (never delivered) still counts
    return max(int(state.attempt), int(getattr(state, "retry_attempt", 0)), 1) + 1


def queued_event(state: Any) -> JobQueued:
    """The job is due and queued: the first attempt of a scheduled job, else the retry's."""
    if state.status == "retrying":
        return JobQueued(attempt=state.retry_attempt, cause="retry")
    if state.held:
        return JobQueued(attempt=state.held, cause="concurrency")
    return JobQueued(attempt=max(state.attempt, 0) + 1, cause="runAt")
