"""What the job queue carries and how it refuses, in our own types: a worker's report of a
job, the queue's two errors, and the reason a cancel signal carries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from domain.events import JobDispatched
from domain.priority import lane_of
from domain.specs import holds_redactions
from domain.wire import DispatchMessage, peek_id

DISPATCH_SUBJECT = "baker.jobs.dispatch"
REPORT_KINDS = ("status", "result", "step")


@dataclass(frozen=True, slots=True)
class Report:
    """One status, result or step message of a job, encoded, with its headers and message id."""

    kind: Literal["status", "result", "step"]
    job_id: str
    status: str
    payload: bytes
    headers: dict[str, str]
    msg_id: str


@dataclass(frozen=True, slots=True)
class LaneState:
    """One priority lane of the queue as its consumer reports it."""

    queued: int  # waiting for a worker
    in_flight: int  # delivered, not yet acknowledged
    paused: bool  # the consumer is paused (queue pause, DESIGN §11)


class QueueFull(Exception):
    """`BAKER_JOBS` holds its maximum number of messages; the job was not queued."""


class QueueUnavailable(Exception):
    """JetStream refused or did not answer a publish."""


def cancel_reason(data: bytes | None) -> str:
    """The reason carried by a cancel signal (a default when it has none or is unreadable)."""
    try:
        reason = json.loads(data or b"{}").get("reason")
    except (ValueError, AttributeError):
        reason = None
    return str(reason or "cancel requested")


def cancel_signal(job_id: str, reason: str | None) -> bytes:
    """The body of a cancel signal for `job_id`."""
    return json.dumps({"jobId": job_id, "reason": reason}).encode()


def job_of_message(subject: str, data: bytes) -> str | None:
    """The job a message of the queue's stream is about: a dispatch names it in its body, a
    worker's report (`baker.jobs.<kind>.<jobId>`) in its subject; None for anything else."""
    if subject == DISPATCH_SUBJECT or subject.startswith(DISPATCH_SUBJECT + "."):
        return peek_id(data)
    parts = subject.split(".")
    if len(parts) == 4 and parts[:2] == ["baker", "jobs"] and parts[2] in REPORT_KINDS:
        return parts[3]
    return None


class NotRequeueable(Exception):
    """The recorded job cannot be queued again as it was dispatched; the message says why."""


def dispatch_msg_id(msg: DispatchMessage) -> str:
    """The `Nats-Msg-Id` of a dispatch: the job id, so a repeated dispatch is not queued
    twice; a job queued again (after an approval) adds its attempt, so the duplicate window
    does not swallow it."""
    return msg.id if (msg.attempt or 1) == 1 else f"{msg.id}:{msg.attempt}"


def requeue_message(
    job_id: str, dispatched: JobDispatched, attempt: int | None = None
) -> DispatchMessage:
    """The dispatch message of a recorded job, rebuilt from its `JobDispatched` event (for a
    job whose Brain stopped before queueing it). `NotRequeueable` when the event does not hold
    the payload as sent: its secrets were masked before it was stored."""
    if holds_redactions(dispatched.job_type, dispatched.payload):
        raise NotRequeueable(
            "its payload held secrets, which the event log does not keep; dispatch it again"
        )
    return DispatchMessage(
        id=job_id,
        type=dispatched.job_type,
        payload=dispatched.payload,
        reply_to=dispatched.reply_to or f"baker.jobs.status.{job_id}",
        created_at=dispatched.created_at,
        timeout_seconds=dispatched.timeout_seconds,
        attempt=attempt if attempt is not None and attempt > 1 else None,
        priority=lane_of(dispatched.priority) if dispatched.priority else None,  # same lane
        labels=dispatched.labels or None,
        concurrency_key=dispatched.concurrency_key,
        concurrency_limit=dispatched.concurrency_limit,
    )
