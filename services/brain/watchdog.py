"""The stuck-job watchdog.

It keeps the non-terminal jobs in memory (seeded from the event log at start, then fed by the
dispatcher and the ingest) with the time of their last sign of life: an event, or a worker
heartbeat naming the job as running (a lease). A job in `received`/`running` with no sign of
life for longer than the stuck timeout is failed with reason `stuck`; a `dispatched` job is
failed only when the queue holds nothing at all for a worker, so it can never be delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.eventstore import EventStore, StoredEvent, StoreUnavailable
from adapters.nats.job_queue import JobQueue
from domain import lifecycle
from domain.commands import FailJob
from services.brain.leadership import Fenced
from services.heartbeat import HEALTH_SUBJECT

log = logging.getLogger("baker.brain.watchdog")


@dataclass
class Watch:
    status: str
    last_seen: float  # monotonic
    trace_id: str | None = None  # the job's trace, so the `stuck` event joins it


class Watchdog:
    def __init__(
        self,
        nc: NATS,
        store: EventStore,
        queue: JobQueue,
        *,
        stuck_after: float = 120.0,
        undeliverable_after: float = 60.0,
        check_every: float = 5.0,
    ) -> None:
        self._nc = nc
        self._store = store
        self._queue = queue
        self.stuck_after = stuck_after
        self.undeliverable_after = undeliverable_after
        self.check_every = check_every
        self.active: dict[str, Watch] = {}
        self.failed = 0

    def observe(
        self, job_id: str, state: Any, seen: float | None = None, trace_id: str | None = None
    ) -> None:
        """Record a job's current state (from the dispatcher, the ingest or the log)."""
        if state.terminal:
            self.active.pop(job_id, None)
            return
        known = self.active.get(job_id)
        trace_id = (known.trace_id if known else None) or trace_id
        self.active[job_id] = Watch(state.status, seen or time.monotonic(), trace_id)

    def lease(self, job_ids: Iterable[str]) -> None:
        """A worker says it is running these jobs: they are alive."""
        now = time.monotonic()
        for job_id in job_ids:
            watch = self.active.get(job_id)
            if watch is not None:
                watch.last_seen = now

    async def seed(self) -> int:
        """Fold every job event of the log into the active set (run once at start)."""
        states: dict[str, tuple[Any, datetime, str | None]] = {}
        async for item in self._store.read_all(1):
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
        now_wall, now = datetime.now(UTC), time.monotonic()
        for job_id, (state, at, trace_id) in states.items():
            if job_id not in self.active:
                self.observe(job_id, state, now - (now_wall - at).total_seconds(), trace_id)
        return len(self.active)

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self._nc.subscribe(HEALTH_SUBJECT, cb=self._on_health)
        try:
            with contextlib.suppress(StoreUnavailable):
                count = await self.seed()
                log.info("watching %d unfinished jobs", count)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.check_every)
                if not stop.is_set():
                    await self.check()
        finally:
            await sub.unsubscribe()

    async def _on_health(self, msg: Msg) -> None:
        try:
            doc = json.loads(msg.data)
            jobs = doc.get("details", {}).get("activeJobs", [])
        except (ValueError, AttributeError):
            return  # the monitor counts and logs bad heartbeats
        if isinstance(jobs, list):
            self.lease(j for j in jobs if isinstance(j, str))

    async def check(self) -> None:
        """Fail the jobs that show no sign of life."""
        now = time.monotonic()
        stuck = [
            (job_id, w)
            for job_id, w in self.active.items()
            if w.status in ("received", "running") and now - w.last_seen > self.stuck_after
        ]
        waiting = [
            job_id
            for job_id, w in self.active.items()
            if w.status == "dispatched" and now - w.last_seen > self.undeliverable_after
        ]
        for job_id, watch in stuck:
            idle = int(now - watch.last_seen)
            await self._fail(
                job_id, f"job stuck in '{watch.status}' for {idle}s with no event or lease"
            )
        if waiting and await self._queue.depth() == (0, 0):
            for job_id in waiting:
                await self._fail(
                    job_id, "job was never delivered: the queue holds no message for it"
                )

    async def _fail(self, job_id: str, error: str) -> None:
        watch = self.active.get(job_id)
        trace_id = watch.trace_id if watch else None
        try:
            outcome = await self._store.execute(
                "job", job_id, FailJob(reason="stuck", error=error), trace_id=trace_id
            )
        except (StoreUnavailable, Fenced):
            return  # the store or the leading Brain will see to it
        self.observe(job_id, outcome.state)
        if outcome.changed and outcome.rejected is None:
            self.failed += 1
            log.warning(error, extra={"job_id": job_id})
