"""The Brain's durable timer for delayed and retrying jobs (DESIGN §11).

A job `scheduled` (runAt/delaySeconds) or `retrying` (a backoff) has no message in the queue:
its due time lives in its own events (`JobScheduled.runAt`, `JobRetryScheduled.retryAt`). The
watchdog hands this timer every such job it sees (from the dispatcher, the ingest, and the log
when the Brain starts, so the timer is rebuilt from the log after a restart or a handoff). When
one comes due the timer records `JobQueued` (the lifecycle decides: a job cancelled meanwhile is
terminal and is not queued) and only then publishes its dispatch message, rebuilt from
`JobDispatched` with the attempt `JobQueued` names, so a retry's message has an id of its own.
Jobs that come due together go as a burst: their `JobQueued` appends pipelined
(`CommandExecutor.execute_each`), then their messages (`JobQueue.dispatch_all`), with each
`JobDispatched` read while the timer waits for them; 1,000 at once take about 0.15 s, not 1.2 s.

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
from datetime import datetime, timedelta
from typing import Any

from adapters.eventstore import StoreUnavailable
from domain.commands import QueueJob
from domain.events import Envelope, JobDispatched, JobQueued
from domain.lifecycle.timing import WAITING_TO_RUN
from domain.queue import NotRequeueable, QueueFull, QueueUnavailable, requeue_message
from domain.wire import DispatchMessage
from services.brain.leadership import Fenced
from services.executor import CommandExecutor, Outcome, Planned
from services.ports.clock import Clock
from services.ports.jobs import JobQueue

log = logging.getLogger("baker.brain.timers")

MAX_WAIT = 5.0  # seconds: the wall clock is looked at again at least this often
BATCH = 1000  # jobs coming due together whose appends, then publishes, go out pipelined
READ_AHEAD = 10.0  # seconds: the dispatches of jobs due this soon are read while waiting

Ready = tuple[str, int]  # a due job, and its version when it was last seen waiting
Publish = tuple[str, DispatchMessage, dict[str, str]]  # a job, its message and headers


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
        self._versions: dict[str, int] = {}  # each due job's version: its `JobQueued`'s cause
        self._firsts: dict[str, Envelope] = {}  # `JobDispatched` of jobs due soon, read ahead
        self._reading: asyncio.Task[None] | None = None
        self.queued = 0
        self._wake = asyncio.Event()

    def observe(self, job_id: str, state: Any) -> None:
        """Track `job_id` while it waits to run; forget it otherwise."""
        if state.status not in WAITING_TO_RUN:
            self.due.pop(job_id, None)
            self._versions.pop(job_id, None)
            self._firsts.pop(job_id, None)
            return
        # A retry recorded without a time (a command without `at`) is due now.
        at = state.due_at or self._clock.wall()
        earlier = not self.due or at < min(self.due.values())
        self.due[job_id] = at
        self._versions[job_id] = state.version
        if earlier:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Queue each job at its due time until `stop`."""
        try:
            while not stop.is_set():
                await self.release_due()
                now = self._clock.wall()
                wait = (
                    min((at - now).total_seconds() for at in self.due.values()) if self.due else 0
                )
                wait = MAX_WAIT if not self.due else min(max(wait, 0.0), MAX_WAIT)
                self._wake.clear()
                if wait > 0:
                    self._read_ahead(now + timedelta(seconds=READ_AHEAD))
                    await self._pause(wait, stop)
        finally:
            if self._reading is not None:
                self._reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reading

    def _read_ahead(self, until: datetime) -> None:
        """Read the `JobDispatched` of the jobs due by `until` while waiting for them, so that
        releasing them costs the appends and the publishes only. Only jobs due that soon are
        held (memory); one not read by its time (due at once, or a Brain that just started) is
        read as it is released."""
        if self._reading is not None and not self._reading.done():
            return
        jobs = [job for job, at in self.due.items() if at <= until and job not in self._firsts]
        if jobs:
            self._reading = asyncio.create_task(self._read(jobs), name="baker-due-read-ahead")

    async def _read(self, jobs: list[str]) -> None:
        for start in range(0, len(jobs), BATCH):
            chunk = jobs[start : start + BATCH]
            firsts = await asyncio.gather(*map(self._dispatched, chunk), return_exceptions=True)
            for job_id, first in zip(chunk, firsts, strict=True):
                if isinstance(first, Envelope) and job_id in self.due:  # not released meanwhile
                    self._firsts[job_id] = first

    async def release_due(self) -> int:
        """Queue every job due by now; how many were queued."""
        now = self._clock.wall()
        ready = [(job, self._versions.pop(job, 0)) for _, job in
                 sorted((at, job) for job, at in self.due.items() if at <= now)]  # fmt: skip
        for job_id, _ in ready:
            self.due.pop(job_id, None)
        done = 0
        for start in range(0, len(ready), BATCH):
            done += await self._release(ready[start : start + BATCH])
        return done

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

    async def _release(self, ready: list[Ready]) -> int:
        """Record `JobQueued` for each of `ready`, then publish the messages of those queued.

        A burst costs two round trips, not three per job: the appends are pipelined (one
        round trip for all), and each job's `JobDispatched` is read while they are on the
        wire (a job's first event never changes, so reading it before the decision is safe;
        the read is wasted only on a job cancelled meanwhile). `execute_each` takes a cause
        for each command: here the wait that came due, named by the version it began at."""
        planned: list[Planned] = [
            ("job", job_id, QueueJob(), None, f"due-{version}") for job_id, version in ready
        ]
        known = {job_id: self._firsts.pop(job_id, None) for job_id, _ in ready}
        unread = [job_id for job_id, first in known.items() if first is None]
        outcomes, read = await asyncio.gather(
            self._executor.execute_each(planned),
            asyncio.gather(*map(self._dispatched, unread), return_exceptions=True),
        )
        by_job = dict(zip(unread, read, strict=True))
        firsts = [known[job_id] or by_job[job_id] for job_id, _ in ready]
        publishes: list[Publish] = []
        failure: Exception | None = None
        for (job_id, version), outcome, first in zip(ready, outcomes, firsts, strict=True):
            if isinstance(outcome, Fenced):
                continue  # the leading Brain queues it
            if isinstance(outcome, StoreUnavailable):
                log.warning("could not queue a due job yet", extra={"job_id": job_id})
                self.due[job_id] = self._clock.wall()  # try again on the next round
                self._versions[job_id] = version
                continue
            if isinstance(outcome, Exception):
                failure = failure or outcome  # raised once the others are queued
                continue
            self._on_outcome(job_id, outcome)
            queued = [e.envelope.data for e in outcome.appended]
            event = next((e for e in queued if isinstance(e, JobQueued)), None)
            if event is None:
                continue  # cancelled, failed or queued meanwhile: nothing to do
            if isinstance(first, BaseException):
                # `dispatched` with no message, as when the queue refuses it (below)
                log.warning(
                    "due job recorded as queued, not queued: its dispatch could not be read: %s",
                    first, extra={"job_id": job_id},
                )  # fmt: skip
                continue
            publish = _message(job_id, first, event.attempt)
            if publish is not None:
                publishes.append(publish)
        done = await self._publish(publishes)
        if failure is not None:
            raise failure
        return done

    async def _dispatched(self, job_id: str) -> Envelope:
        history = await self._executor.store.load("job", job_id)
        first = history.events[0].envelope
        assert isinstance(first.data, JobDispatched)  # a job's history starts with its dispatch
        return first

    async def _publish(self, publishes: list[Publish]) -> int:
        """Publish pipelined; if the queue refuses any, each again on its own to learn which
        (the job id is the message id: one already stored is not queued twice)."""
        if not publishes:
            return 0
        try:
            await self._queue.dispatch_all(
                [(message, headers) for _, message, headers in publishes]
            )
        except (QueueFull, QueueUnavailable):
            done = await asyncio.gather(*(self._publish_one(*p) for p in publishes))
            return sum(done)
        self.queued += len(publishes)
        return len(publishes)

    async def _publish_one(
        self, job_id: str, message: DispatchMessage, headers: dict[str, str]
    ) -> bool:
        try:
            await self._queue.dispatch(message, headers)
        except (QueueFull, QueueUnavailable) as exc:
            # `dispatched` with no message: the watchdog's undeliverable rule, or the next
            # leading Brain's requeue, sees to it
            log.warning("due job recorded as queued, not queued yet: %s", exc,
                        extra={"job_id": job_id})  # fmt: skip
            return False
        self.queued += 1
        return True


def _message(job_id: str, first: Envelope, attempt: int) -> Publish | None:
    """The dispatch message of a due job, rebuilt from its `JobDispatched`, or None when it
    cannot be (logged)."""
    assert isinstance(first.data, JobDispatched)
    try:
        message = requeue_message(job_id, first.data, attempt)
    except NotRequeueable as exc:
        # left `dispatched` with no message: the next leading Brain fails it, naming why
        log.error("cannot queue a due job: %s", exc,
                  extra={"job_id": job_id, "trace_id": first.trace_id})  # fmt: skip
        return None
    headers = {}
    if first.trace_id:  # the worker's span joins the job's trace
        headers["traceparent"] = f"00-{first.trace_id}-{secrets.token_hex(8)}-01"
    return job_id, message, headers
