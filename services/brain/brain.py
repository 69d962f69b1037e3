"""The Brain's background work in one object: dispatcher, ingest, advisories, watchdog, tasks.

It is handed its parts (the composition root, `services.bootstrap`, builds them); every job
outcome the dispatcher or the ingest records goes to `outcomes`, which tells the watchdog and
any other observer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from domain.pricing import DEFAULT_TABLE, PriceTable
from services.brain.advisories import MaxDeliveries
from services.brain.dispatcher import Dispatcher
from services.brain.ingest import Ingest
from services.brain.scheduler import Scheduler
from services.brain.watchdog import Watchdog
from services.executor import Outcome
from services.ports.jobs import JobQueue
from services.ports.topics import Heartbeat
from services.tasks.service import TaskService


@dataclass(frozen=True)
class BrainSettings:
    stuck_after: float = 120.0
    undeliverable_after: float = 60.0
    check_every: float = 5.0
    heartbeat_every: float = 30.0
    prices: PriceTable = DEFAULT_TABLE  # what the ingest costs each model call at


class Runs(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


class JobOutcomes:
    """Where the dispatcher and the ingest report job outcomes: the watchdog, then observers."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog
        self.observers: list[Callable[[str, Outcome], None]] = []

    def __call__(self, job_id: str, outcome: Outcome) -> None:
        trace_id = next((e.envelope.trace_id for e in outcome.appended), None)
        self.watchdog.observe(job_id, outcome.state, trace_id=trace_id)
        for observer in self.observers:
            observer(job_id, outcome)


def new_brain_id() -> str:
    return f"brain-{uuid.uuid4().hex[:8]}"


class Brain:
    def __init__(
        self,
        *,
        queue: JobQueue,
        dispatcher: Dispatcher,
        ingest: Ingest,
        advisories: MaxDeliveries,
        watchdog: Watchdog,
        outcomes: JobOutcomes,
        tasks: TaskService,
        heartbeat: Heartbeat | None = None,
        instance: str | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.instance = instance or new_brain_id()
        self.scheduler = scheduler
        self.queue = queue
        self.dispatcher = dispatcher
        self.ingest = ingest
        self.advisories = advisories
        self.watchdog = watchdog
        self.tasks = tasks
        self._outcomes = outcomes
        self._heartbeat = heartbeat

    def add_observer(self, observer: Callable[[str, Outcome], None]) -> None:
        """Be told of every job outcome the dispatcher or the ingest records."""
        self._outcomes.observers.append(observer)

    async def run_work(self, stop: asyncio.Event) -> None:
        """Ingest, advisories, the watchdog and tasks until `stop`; in-flight ingest is
        finished."""
        parts: list[Runs] = [self.ingest, self.advisories, self.watchdog, self.tasks]
        if self.scheduler is not None:
            parts.append(self.scheduler)
        await asyncio.gather(*(part.run(stop) for part in parts))

    async def run(self, stop: asyncio.Event) -> None:
        """Work and heartbeat until `stop` (a Brain that is always the only one)."""
        try:
            if self._heartbeat is None:
                await self.run_work(stop)
            else:
                await asyncio.gather(
                    self.run_work(stop), self._heartbeat(self.instance, self.details, stop)
                )
        finally:
            await self.queue.close()

    def details(self) -> dict[str, Any]:
        stats = self.ingest.stats
        return {
            "ingested": stats.processed,
            "malformed": stats.malformed,
            "rejected": stats.rejected,
            "watching": len(self.watchdog.active),
        }
