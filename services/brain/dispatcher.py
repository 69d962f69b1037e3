"""Dispatching and cancelling jobs: the Brain's write side for clients.

The `JobDispatched` event is appended first, then the job is queued. If queueing fails the job
is failed with reason `dispatch_failed` in the same call, so there is never a dispatched job
that no worker will see and nobody is told about.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters import tracing
from adapters.eventstore import StoreUnavailable
from domain.commands import DispatchJob, FailJob, RequestCancel
from domain.queue import QueueFull, QueueUnavailable
from domain.specs import AgentJob, CommandJob, HttpJob, start_time
from services.brain.admission import Admission
from services.brain.approvals import Approvals
from services.brain.batch import Batches, dispatch_message
from services.executor import CommandExecutor, Outcome
from services.ports.jobs import JobQueue

log = logging.getLogger("baker.brain.dispatch")
JobSpec = AgentJob | CommandJob | HttpJob


class DispatchFailed(Exception):
    """The job was recorded but could not be queued; it is now `failed`."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(reason)
        self.job_id = job_id


class JobNotFound(LookupError):
    pass


class JobAlreadyFinished(Exception):
    """Cancelling a job in a terminal state."""


@dataclass(frozen=True)
class Dispatched:
    job_id: str
    seq: int  # stream sequence of the JobDispatched event (for read-your-writes)
    trace_id: str | None
    status: str = "dispatched"  # "scheduled": a delayed job, queued at its time


@dataclass(frozen=True)
class Origin:
    """Where a job comes from, when it reruns or forks another."""

    rerun_of: str | None = None
    fork_of: dict[str, Any] | None = None
    forked_steps: tuple[dict[str, Any], ...] = ()
    schedule: dict[str, Any] | None = None  # {name, slot}: the schedule slot that fired it


def new_job_id(clock_ns: Callable[[], int] = time.time_ns) -> str:
    """`job-`, the time in ms (12 hex digits), 48 random bits: ids made one after another
    sort together, so each new job lands on the same few pages of the read model's indexes
    keyed by job id instead of on a random page (less to write per transaction); unique as
    long as two jobs of one millisecond do not draw the same 48 bits."""
    return f"job-{clock_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


class Dispatcher:
    def __init__(
        self,
        executor: CommandExecutor,
        queue: JobQueue,
        on_outcome: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        self._executor = executor
        self._queue = queue
        self.admission = Admission(queue)
        self._on_outcome = on_outcome or (lambda _job, _outcome: None)
        self._tracer = tracing.tracer("baker.brain")
        self.approvals = Approvals(executor, queue, self._on_outcome)
        self.batches = Batches(self, queue, new_job_id)

    @property
    def executor(self) -> CommandExecutor:
        return self._executor

    async def dispatch(
        self, spec: JobSpec, job_id: str | None = None, origin: Origin | None = None
    ) -> Dispatched:
        """Record and queue a job; `QueueFull` (nothing recorded, or the job recorded as
        `failed` when JetStream itself refused it) or `DispatchFailed` when it cannot be queued.
        `origin`: the job it reruns or forks (and a fork's copied steps).
        """
        job_id = job_id or new_job_id()
        await self.admission.admit()
        try:
            return await self._record_and_queue(spec, job_id, origin or Origin())
        finally:
            self.admission.stored()

    async def _record_and_queue(self, spec: JobSpec, job_id: str, origin: Origin) -> Dispatched:
        created = datetime.now(UTC)
        with tracing.span(
            self._tracer, "job.dispatch", attributes={"job.id": job_id, "job.type": spec.type}
        ) as span:
            trace_id = tracing.trace_id_of(span)
            headers: dict[str, str] = {}
            tracing.inject(headers)
            reply_to = f"baker.jobs.status.{job_id}"
            outcome = await self._executor.execute(
                "job",
                job_id,
                DispatchJob(
                    spec=spec,
                    reply_to=reply_to,
                    created_at=created,
                    rerun_of=origin.rerun_of,
                    fork_of=origin.fork_of,
                    forked_steps=origin.forked_steps,
                    schedule=origin.schedule,
                    start_at=start_time(spec, created),
                ),
                trace_id=trace_id,
                new=True,  # ids are fresh; a client re-sending one just conflicts and re-reads
            )
            seq = outcome.position.seq
            self._on_outcome(job_id, outcome)
            if not outcome.changed:  # the same id again: already dispatched, nothing to do
                return Dispatched(job_id, seq, trace_id)
            if outcome.state.status == "scheduled":  # the timer queues it on time (§11)
                log.info("scheduled %s job", spec.type, extra={"job_id": job_id})
                return Dispatched(job_id, seq, trace_id, "scheduled")
            message = dispatch_message(job_id, spec, reply_to, created)
            try:
                await self._queue.dispatch(message, headers)
            except (QueueFull, QueueUnavailable) as exc:
                await self._fail(job_id, str(exc), trace_id)
                if isinstance(exc, QueueFull):
                    raise
                raise DispatchFailed(job_id, str(exc)) from exc
            log.info("dispatched %s job", spec.type, extra={"job_id": job_id, "trace_id": trace_id})
            return Dispatched(job_id, seq, trace_id)

    async def fail_unqueued(self, job_id: str, error: str, trace_id: str | None) -> None:
        """Record that a recorded job could not be queued (`dispatch_failed`)."""
        await self._fail(job_id, error, trace_id)

    def observe(self, job_id: str, outcome: Outcome) -> None:
        self._on_outcome(job_id, outcome)

    async def _fail(self, job_id: str, error: str, trace_id: str | None) -> None:
        log.warning(
            "could not queue the job: %s", error, extra={"job_id": job_id, "trace_id": trace_id}
        )
        try:
            outcome = await self._executor.execute(
                "job", job_id, FailJob(reason="dispatch_failed", error=error), trace_id=trace_id
            )
            self._on_outcome(job_id, outcome)
        except StoreUnavailable:
            log.exception("could not record dispatch_failed", extra={"job_id": job_id})

    async def cancel(self, job_id: str, reason: str | None = None) -> int:
        """Request cancellation; the worker running the job stops it. Returns the event seq."""
        with tracing.span(self._tracer, "job.cancel", attributes={"job.id": job_id}) as span:
            outcome = await self._executor.execute(
                "job", job_id, RequestCancel(reason=reason), trace_id=tracing.trace_id_of(span)
            )
            if outcome.rejected is not None:
                if outcome.position.version == 0:
                    raise JobNotFound(job_id)
                raise JobAlreadyFinished(outcome.rejected.reason)
            self._on_outcome(job_id, outcome)  # a job nobody held ends here: the Brain knows
            await self._queue.signal_cancel(job_id, reason)
            return outcome.position.seq
