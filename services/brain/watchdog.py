"""The stuck-job watchdog.

It keeps the non-terminal jobs in memory (seeded from the event log at start, then fed by the
dispatcher and the ingest) with the time of their last sign of life: an event, or a worker
heartbeat naming the job as running (a lease). A job in `received`/`running` with no sign of
life for longer than the stuck timeout is failed with reason `stuck`; an agent job `waiting`
for an approval longer than its `approvalTimeoutSeconds`, with reason `approval_timeout`.
When the Brain starts leading, the `dispatched` jobs that have no message in the queue (their
Brain stopped before queueing them) are queued again (`services.brain.requeue`); later, a
`dispatched` job silent for longer than the undeliverable timeout with no message in the
queue (expired after a day unread, or removed by hand) is failed: it can never be delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.clock import SYSTEM_CLOCK
from adapters.eventstore import StoredEvent, StoreUnavailable
from domain import lifecycle
from domain.commands import FailJob
from domain.events import FailureReason
from domain.queue import QueueUnavailable
from domain.specs import DEFAULT_APPROVAL_TIMEOUT
from services.brain.concurrency import ConcurrencyGate
from services.brain.leadership import Fenced
from services.brain.queue_control import QueueControl
from services.brain.requeue import requeue_unqueued
from services.brain.timers import DueTimer
from services.executor import CommandExecutor
from services.ports.clock import Clock, pause
from services.ports.jobs import JobQueue
from services.ports.topics import Topic

log = logging.getLogger("baker.brain.watchdog")


@dataclass
class Watch:
    status: str
    last_seen: float  # clock time
    trace_id: str | None = None  # the job's trace, so the `stuck` event joins it
    approval_timeout: int | None = None  # seconds the job may stay `waiting`


class Watchdog:
    def __init__(
        self,
        executor: CommandExecutor,
        queue: JobQueue,
        health: Topic | None = None,
        *,
        stuck_after: float = 120.0,
        undeliverable_after: float = 60.0,
        check_every: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._executor = executor
        self._queue = queue
        self._health = health  # heartbeats naming running jobs (leases)
        self._clock = clock
        self.stuck_after = stuck_after
        self.undeliverable_after = undeliverable_after
        self.check_every = check_every
        self.active: dict[str, Watch] = {}
        self.failed = 0
        # jobs of a concurrency key at its limit wait here; every publish of a job goes
        # through it (the Brain's parts are handed `gate` as their queue)
        self.gate = ConcurrencyGate(queue, executor, on_outcome=self._timer_outcome)
        # scheduled and retrying jobs, queued at their time (fed from here: `observe`, `seed`)
        self.timer = DueTimer(executor, self.gate, clock, on_outcome=self._timer_outcome)

    def _timer_outcome(self, job_id: str, outcome: Any) -> None:
        self.observe(job_id, outcome.state)

    def observe(
        self, job_id: str, state: Any, seen: float | None = None, trace_id: str | None = None
    ) -> None:
        """Record a job's current state (from the dispatcher, the ingest or the log)."""
        self.timer.observe(job_id, state)
        self.gate.observe(job_id, state)
        if state.terminal:
            self.active.pop(job_id, None)
            return
        known = self.active.get(job_id)
        trace_id = (known.trace_id if known else None) or trace_id
        timeout = getattr(state, "approval_timeout", None)
        status = "held" if getattr(state, "held", 0) else state.status  # not undeliverable
        self.active[job_id] = Watch(status, seen or self._clock.now(), trace_id, timeout)

    def lease(self, job_ids: Iterable[str]) -> None:
        """A worker says it is running these jobs: they are alive."""
        now = self._clock.now()
        for job_id in job_ids:
            watch = self.active.get(job_id)
            if watch is not None:
                watch.last_seen = now

    async def seed(self) -> int:
        """Fold every job event of the log into the active set (run once at start)."""
        states: dict[str, tuple[Any, datetime, str | None]] = {}
        async for item in self._executor.store.read_all(1):
            if not isinstance(item, StoredEvent) or item.envelope.aggregate != "job":
                continue
            env = item.envelope
            state, _, trace_id = states.get(
                env.aggregate_id, (lifecycle.initial_state("job"), env.occurred_at, None)
            )
            states[env.aggregate_id] = (
                lifecycle.evolve("job", state, env.data),
                env.occurred_at,
                trace_id or env.trace_id,
            )
        now_wall, now = datetime.now(UTC), self._clock.now()
        for job_id, (state, at, trace_id) in states.items():
            if job_id not in self.active:
                self.observe(job_id, state, now - (now_wall - at).total_seconds(), trace_id)
        self.gate.seed((job_id, state) for job_id, (state, _, _) in states.items())
        return len(self.active)

    async def run(self, stop: asyncio.Event) -> None:
        sub = None if self._health is None else await self._health.subscribe(self.on_health)
        try:
            with contextlib.suppress(StoreUnavailable, QueueUnavailable):
                count = await self.seed()
                log.info("watching %d unfinished jobs", count)
                await self.gate.settle()  # keyed jobs are admitted from here on
                await self.requeue()
            await self.gate.settle()  # (again, if the log could not be read: admit anyway)
            await self._reconcile_queue()
            timer = asyncio.create_task(self.timer.run(stop), name="baker-due-timer")
            try:
                while not stop.is_set():
                    await pause(self._clock, self.check_every, stop)
                    if not stop.is_set():
                        await self.check()
            finally:
                if not stop.is_set():  # cancelled: the timer stops with it
                    timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
        finally:
            if sub is not None:
                await sub.unsubscribe()

    async def _reconcile_queue(self) -> None:
        """The lanes paused or running as the log says (a Brain may have stopped between the
        event and the pause; a pause of the queue outlives every Brain)."""
        try:
            if await QueueControl(self._executor, self._queue).reconcile():
                log.warning("the queue is paused: workers take no new jobs until it is resumed")
        except (StoreUnavailable, QueueUnavailable) as exc:
            log.warning("could not apply the queue's recorded pause state: %s", exc)

    async def requeue(self) -> None:
        """Queue again the `dispatched` jobs that have no message in the queue (at start: only
        a Brain that stopped between recording and queueing them leaves such jobs)."""
        candidates = [job for job, w in self.active.items() if w.status == "dispatched"]
        try:
            done = await requeue_unqueued(self._executor, self.gate, candidates)
        except Fenced:
            return  # the leading Brain does it
        for job_id in done.queued:
            self.active[job_id].last_seen = self._clock.now()
        if done.queued or done.failed:
            log.warning(
                "%d jobs recorded but never queued: %d queued again, %d failed",
                len(done.queued) + len(done.failed), len(done.queued), len(done.failed),
            )  # fmt: skip

    async def on_health(self, data: bytes) -> None:
        """A health heartbeat: the jobs a worker names as running are alive."""
        try:
            doc = json.loads(data)
            jobs = doc.get("details", {}).get("activeJobs", [])
        except (ValueError, AttributeError):
            return  # the monitor counts and logs bad heartbeats
        if isinstance(jobs, list):
            self.lease(j for j in jobs if isinstance(j, str))

    async def check(self) -> None:
        """Fail the jobs that show no sign of life."""
        now = self._clock.now()
        stuck = [
            (job_id, w)
            for job_id, w in self.active.items()
            if w.status in ("received", "running") and now - w.last_seen > self.stuck_after
        ]
        waiting = [
            job_id
            for job_id, w in self.active.items()
            if w.status == "dispatched"
            and now - w.last_seen > self.undeliverable_after
            and not self.gate.holds(job_id)
        ]
        for job_id, watch in stuck:
            idle = int(now - watch.last_seen)
            await self._fail(
                job_id, f"job stuck in '{watch.status}' for {idle}s with no event or lease"
            )
        for job_id, watch in list(self.active.items()):
            limit = watch.approval_timeout or DEFAULT_APPROVAL_TIMEOUT
            if watch.status == "waiting" and now - watch.last_seen > limit:
                error = f"no answer to the approval request within {limit}s"
                await self._fail(job_id, error, "approval_timeout")
        if waiting:
            await self.gate.release_all()  # a release that failed earlier is tried again
            present = await self._queue.queued_jobs()
            for job_id in waiting:
                if job_id not in present:
                    await self._fail(
                        job_id, "job was never delivered: the queue holds no message for it"
                    )

    async def _fail(self, job_id: str, error: str, reason: FailureReason = "stuck") -> None:
        watch = self.active.get(job_id)
        trace_id = watch.trace_id if watch else None
        try:
            fail = FailJob(reason=reason, error=error, at=self._clock.wall())
            outcome = await self._executor.execute("job", job_id, fail, trace_id=trace_id)
        except (StoreUnavailable, Fenced):
            return  # the store or the leading Brain will see to it
        self.observe(job_id, outcome.state)
        if outcome.changed and outcome.rejected is None:
            self.failed += 1
            log.warning(error, extra={"job_id": job_id})
