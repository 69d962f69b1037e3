"""Batch dispatch (DESIGN §11): many validated jobs recorded and queued in one go.

Each job still gets its own `JobDispatched` (its own aggregate, history and message), but the
appends are pipelined through `CommandExecutor.execute_each` (one round trip for the whole
batch instead of one per job) and so are the queue publishes (`JobQueue.dispatch_all`).

All or nothing holds for what can be known before anything is written: every spec is valid
(the caller checked) and the queue has room for all of them (admission, before any append).
A failure after that (the store or the queue going away half-way) cannot be undone in an
append-only log, so it is reported per job instead: the jobs recorded but not queued are
failed `dispatch_failed`, as a single dispatch does, and the answer names them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from adapters import tracing
from domain.commands import DispatchJob
from domain.queue import QueueFull, QueueUnavailable
from domain.specs import (
    AgentJob,
    CommandJob,
    HttpJob,
    concurrency_of,
    payload_document,
    start_time,
)
from domain.wire import DispatchMessage
from services.brain.admission import Admission
from services.executor import CommandExecutor, Outcome, Planned
from services.ports.jobs import JobQueue

log = logging.getLogger("baker.brain.dispatch")
JobSpec = AgentJob | CommandJob | HttpJob
MAX_BATCH = 1_000


def dispatch_message(
    job_id: str, spec: JobSpec, reply_to: str, created: datetime
) -> DispatchMessage:
    """What the workers get for a recorded job (one place for single and batch dispatch)."""
    return DispatchMessage(
        id=job_id,
        type=spec.type,
        payload=payload_document(spec),
        reply_to=reply_to,
        created_at=created,
        timeout_seconds=spec.timeout_seconds,
        labels=spec.labels or None,
        priority=spec.priority,
        concurrency_key=concurrency_of(spec)[0],
        concurrency_limit=concurrency_of(spec)[1],
    )


class Owner(Protocol):
    """What a batch needs of the dispatcher it belongs to."""

    @property
    def executor(self) -> CommandExecutor: ...
    @property
    def admission(self) -> Admission: ...
    def observe(self, job_id: str, outcome: Outcome) -> None: ...
    async def fail_unqueued(self, job_id: str, error: str, trace_id: str | None) -> None: ...


@dataclass(frozen=True)
class BatchDispatched:
    ids: list[str]  # in the order of the specs
    seq: int  # the highest stream sequence appended (for read-your-writes)
    trace_id: str | None
    # index -> why that job is not running: not recorded (the store refused it) or recorded
    # and failed `dispatch_failed` (the queue refused it). Empty when all went well.
    failed: dict[int, str] = field(default_factory=dict)


class Batches:
    def __init__(self, owner: Owner, queue: JobQueue, new_id: Callable[[], str]) -> None:
        self._owner = owner
        self._queue = queue
        self._new_id = new_id
        self._tracer = tracing.tracer("baker.brain")

    async def dispatch(self, specs: Sequence[JobSpec]) -> BatchDispatched:
        """Record and queue `specs` (at most `MAX_BATCH`); `QueueFull` with nothing recorded
        when the queue has no room for all of them."""
        if len(specs) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} jobs in a batch, not {len(specs)}")
        admission, admitted = self._owner.admission, 0
        try:
            for _ in specs:
                await admission.admit()
                admitted += 1
            return await self._record_and_queue(specs)
        finally:
            for _ in range(admitted):
                admission.stored()

    async def _record_and_queue(self, specs: Sequence[JobSpec]) -> BatchDispatched:
        ids = [self._new_id() for _ in specs]
        created = datetime.now(UTC)
        with tracing.span(
            self._tracer, "job.dispatch_batch", attributes={"jobs": len(specs)}
        ) as span:
            trace_id = tracing.trace_id_of(span)
            headers: dict[str, str] = {}
            tracing.inject(headers)
            # The batch is the cause of its events: their ids derive from it, so a retried
            # append of one of them is recognised as the same event.
            cause = f"batch-{uuid.uuid4().hex}"
            executor = self._owner.executor
            planned: list[Planned] = []
            for job_id, spec in zip(ids, specs, strict=True):
                executor.assume_new("job", job_id)
                command = DispatchJob(
                    spec=spec, reply_to=_reply_to(job_id), created_at=created,
                    start_at=start_time(spec, created),
                )  # fmt: skip
                planned.append(("job", job_id, command, trace_id, cause))
            outcomes = await executor.execute_each(planned)
            failed: dict[int, str] = {}
            queued: list[tuple[int, DispatchMessage]] = []
            seq = 0
            for n, (job_id, spec, outcome) in enumerate(zip(ids, specs, outcomes, strict=True)):
                if isinstance(outcome, Exception):
                    failed[n] = f"not recorded: {outcome}"
                    continue
                self._owner.observe(job_id, outcome)
                seq = max(seq, outcome.position.seq)
                if outcome.changed and outcome.state.status != "scheduled":  # the timer queues it
                    queued.append((n, dispatch_message(job_id, spec, _reply_to(job_id), created)))
            failed |= await self._queue_all(queued, headers, trace_id)
            log.info(
                "dispatched a batch of %d jobs (%d not running)",
                len(specs), len(failed), extra={"trace_id": trace_id},
            )  # fmt: skip
            return BatchDispatched(ids, seq, trace_id, failed)

    async def _queue_all(
        self,
        queued: list[tuple[int, DispatchMessage]],
        headers: dict[str, str],
        trace_id: str | None,
    ) -> dict[int, str]:
        """Publish every message pipelined; if that is refused, each one again on its own
        (the job id is the message id, so one already stored is not queued twice) and the
        ones still refused are failed `dispatch_failed`."""
        if not queued:
            return {}
        try:
            await self._queue.dispatch_all([(msg, headers) for _, msg in queued])
            return {}
        except (QueueFull, QueueUnavailable) as exc:
            log.warning("a batch's pipelined queueing was refused (%s); one by one", exc)
        failed: dict[int, str] = {}
        for n, msg in queued:
            try:
                await self._queue.dispatch(msg, headers)
            except (QueueFull, QueueUnavailable) as exc:
                await self._owner.fail_unqueued(msg.id, str(exc), trace_id)
                failed[n] = f"not queued: {exc}"
        return failed


def _reply_to(job_id: str) -> str:
    return f"baker.jobs.status.{job_id}"
