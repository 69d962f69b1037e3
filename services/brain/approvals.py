"""Answering an agent job's approval request (DESIGN §10): record the answer, then queue the
job again so any worker resumes it from its steps.

The answer is appended first, then the dispatch message (rebuilt from `JobDispatched`, with
the job's next attempt, so the queue's duplicate window does not take it for the first
dispatch). A Brain that stops between the two leaves a `dispatched` job with no message,
which the next leading Brain queues again (`services.brain.requeue`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from domain.commands import AnswerApproval, FailJob
from domain.events import JobDispatched
from domain.queue import NotRequeueable, QueueFull, QueueUnavailable, requeue_message
from services.executor import CommandExecutor, Outcome
from services.ports.jobs import JobQueue

log = logging.getLogger("baker.brain.approvals")


class NotWaiting(Exception):
    """The job is not waiting for this approval (answered already, never asked, finished)."""


class NoSuchJob(LookupError):
    pass


@dataclass(frozen=True)
class Answered:
    job_id: str
    seq: int  # stream sequence of the answer's last event (for read-your-writes)
    queued: bool  # False: the queue refused now; the next leading Brain queues it


class Approvals:
    def __init__(
        self,
        executor: CommandExecutor,
        queue: JobQueue,
        on_outcome: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        self._executor = executor
        self._queue = queue
        self._on_outcome = on_outcome or (lambda _job, _outcome: None)

    async def awaited(self, job_id: str) -> str | None:
        """The tool use the job waits for, if it waits."""
        history = await self._executor.store.load("job", job_id)
        return getattr(history.state, "awaiting", None)

    async def answer(
        self, job_id: str, tool_use_id: str | None, approve: bool, note: str | None = None,
        by: str | None = None,
    ) -> Answered:  # fmt: skip
        """Record the answer (`tool_use_id` None: the call the job waits for) and queue the
        job again; `NoSuchJob` or `NotWaiting` (naming why) when there is nothing to answer."""
        use = tool_use_id or await self.awaited(job_id) or ""
        cmd = AnswerApproval(tool_use_id=use, approve=approve, note=note, by=by)
        outcome = await self._executor.execute("job", job_id, cmd)
        self._on_outcome(job_id, outcome)
        if outcome.rejected is not None:
            if outcome.position.version == 0:
                raise NoSuchJob(job_id)
            raise NotWaiting(outcome.rejected.reason)
        queued = await self._queue_again(job_id, outcome.state.attempt + 1)
        verb = "approved" if approve else "denied"
        log.info("tool call %s %s", use, verb, extra={"job_id": job_id})
        return Answered(job_id, outcome.position.seq, queued)

    async def _queue_again(self, job_id: str, attempt: int) -> bool:
        history = await self._executor.store.load("job", job_id)
        first = history.events[0].envelope
        assert isinstance(first.data, JobDispatched)  # a job's history starts with its dispatch
        try:
            message = requeue_message(job_id, first.data, attempt)
        except NotRequeueable as exc:  # a prompt holding a value that looks like a credential
            error = f"answered, but cannot be queued again: {exc}"
            failed = await self._executor.execute(
                "job", job_id, FailJob(reason="dispatch_failed", error=error)
            )
            self._on_outcome(job_id, failed)
            log.warning("cannot queue the job again: %s", exc, extra={"job_id": job_id})
            return False
        headers = {}
        if first.trace_id:
            headers["traceparent"] = f"00-{first.trace_id}-{secrets.token_hex(8)}-01"
        try:
            await self._queue.dispatch(message, headers)
        except (QueueFull, QueueUnavailable) as exc:
            log.warning("answered, not queued yet: %s", exc, extra={"job_id": job_id})
            return False
        return True
