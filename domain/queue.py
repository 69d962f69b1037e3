"""What the job queue carries and how it refuses, in our own types: a worker's report of a
job, the queue's two errors, and the reason a cancel signal carries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Report:
    """One status or result message of a job, encoded, with its headers and message id."""

    kind: Literal["status", "result"]
    job_id: str
    status: str
    payload: bytes
    headers: dict[str, str]
    msg_id: str


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
