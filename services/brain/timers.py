"""The Brain's durable timer for delayed and retrying jobs (DESIGN §11).

A job `scheduled` (runAt/delaySeconds) or `retrying` (a backoff) has no message in the queue:
its due time lives in its own events (`JobScheduled.runAt`, `JobRetryScheduled.retryAt`). The
watchdog hands this timer every such job it sees (from the dispatcher, the ingest, and the log
when the Brain starts, so the timer is rebuilt from the log after a restart or a handoff). When
one comes due the timer records `JobQueued` (the lifecycle decides: a job cancelled meanwhile is
terminal and is not queued) and only then publishes its dispatch message, rebuilt from
`JobDispatched` with the attempt `JobQueued` names, so a retry's message has an id of its own.

Why not the server's message schedules (`Nats-Schedule`, 2.12+): the change of state must be an
event decided by the lifecycle before a worker can see the job, a cancel must win or lose
against the start atomically (here both go through the executor's optimistic append, so exactly
one does), and the fencing of a deposed Brain must hold; a server-fired message is none of that.
A Brain that stops between `JobQueued` and the publish leaves a `dispatched` job with no message,
which the next leading Brain queues again (`services.brain.requeue`) with the same message id.
Only the leader queues: a fenced Brain's append raises `Fenced` and it leaves the job alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters.eventstore import StoreUnavailable
from domain.commands import QueueJob
from domain.events import JobDispatched, JobQueued
from domain.lifecycle.timing import WAITING_TO_RUN
from domain.queue import NotRequeueable, QueueFull, QueueUnavailable, requeue_message
from services.brain.leadership import Fenced
from services.executor import CommandExecutor, Outcome
from services.ports.clock import Clock
from services.ports.jobs import JobQueue

log = logging.getLogger("baker.brain.timers")

MAX_WAIT = 5.0  # seconds: the wall clock is looked at again at least this often
CONCURRENCY = 64  # jobs queued at once when many come due together


class DueTimer:
    def __init__(
        self,
        executor: CommandExecutor,
        queue: JobQueue,
        clock: Clock,
        on_outcome: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        self._executor = executor
        self._queue = queue
        self._clock = clock
        self._on_outcome = on_outcome or (lambda _job, _outcome: None)
        self.due: dict[str, datetime] = {}
        self.queued = 0
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(CONCURRENCY)

    def observe(self, job_id: str, state: Any) -> None:
        """Track `job_id` while it waits to run; forget it otherwise."""
        if state.status not in WAITING_TO_RUN:
            self.due.pop(job_id, None)
            return
        # A retry recorded without a time (a command without `at`) is due now.
        at = state.due_at or self._clock.wall()
        earlier = not self.due or at < min(self.due.values())
        self.due[job_id] = at
        if earlier:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Queue each job at its due time until `stop`."""
        while not stop.is_set():
            await self.release_due()
            now = self._clock.wall()
            wait = min((at - now).total_seconds() for at in self.due.values()) if self.due else 0
            wait = MAX_WAIT if not self.due else min(max(wait, 0.0), MAX_WAIT)
            self._wake.clear()
            if wait > 0:
                await self._pause(wait, stop)

    async def release_due(self) -> int:
        """Queue every job due by now; how many were queued."""
        now = self._clock.wall()
        ready = sorted((at, job) for job, at in self.due.items() if at <= now)
        for _, job_id in ready:
            self.due.pop(job_id, None)
        done = await asyncio.gather(*(self._release(job_id) for _, job_id in ready))
        return sum(done)

    async def _pause(self, seconds: float, stop: asyncio.Event) -> None:
        waiters = [
            asyncio.ensure_future(self._clock.sleep(seconds)),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._wake.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter

    async def _release(self, job_id: str) -> bool:
        async with self._limit:
            try:
                outcome = await self._executor.execute("job", job_id, QueueJob())
            except Fenced:
                return False  # the leading Brain queues it
            except StoreUnavailable:
                log.warning("could not queue a due job yet", extra={"job_id": job_id})
                self.due[job_id] = self._clock.wall()  # try again on the next round
                return False
            self._on_outcome(job_id, outcome)
            queued = [e.envelope.data for e in outcome.appended]
            event = next((e for e in queued if isinstance(e, JobQueued)), None)
            if event is None:
                return False  # cancelled, failed or queued meanwhile: nothing to do
            return await self._publish(job_id, event.attempt)

    async def _publish(self, job_id: str, attempt: int) -> bool:
        history = await self._executor.store.load("job", job_id)
        first = history.events[0].envelope
        assert isinstance(first.data, JobDispatched)  # a job's history starts with its dispatch
        context = {"job_id": job_id, "trace_id": first.trace_id}
        try:
            message = requeue_message(job_id, first.data, attempt)
        except NotRequeueable as exc:
            # left `dispatched` with no message: the next leading Brain fails it, naming why
            log.error("cannot queue a due job: %s", exc, extra=context)
            return False
        headers = {}
        if first.trace_id:  # the worker's span joins the job's trace
            headers["traceparent"] = f"00-{first.trace_id}-{secrets.token_hex(8)}-01"
        try:
            await self._queue.dispatch(message, headers)
        except (QueueFull, QueueUnavailable) as exc:
            # `dispatched` with no message: the watchdog's undeliverable rule, or the next
            # leading Brain's requeue, sees to it
            log.warning("due job recorded as queued, not queued yet: %s", exc, extra=context)
            return False
        self.queued += 1
        return True
