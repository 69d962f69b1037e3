"""The Brain's background work in one object: dispatcher, ingest, advisories, watchdog."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS

from adapters.eventstore import EventStore, Outcome
from adapters.nats.bus import NatsBus
from adapters.nats.inbox import task_inbox
from adapters.nats.job_queue import JobQueue
from services import heartbeat
from services.brain.advisories import MaxDeliveries
from services.brain.dispatcher import Dispatcher
from services.brain.ingest import Ingest
from services.brain.watchdog import Watchdog
from services.tasks.service import TaskService


@dataclass(frozen=True)
class BrainSettings:
    stuck_after: float = 120.0
    undeliverable_after: float = 60.0
    check_every: float = 5.0
    heartbeat_every: float = 30.0


class Brain:
    def __init__(
        self,
        nc: NATS,
        store: EventStore,
        settings: BrainSettings | None = None,
        instance: str | None = None,
    ) -> None:
        self.settings = settings or BrainSettings()
        self.instance = instance or f"brain-{uuid.uuid4().hex[:8]}"
        self._nc = nc
        self.store = store
        self.queue = JobQueue(nc)
        self.watchdog = Watchdog(
            nc,
            store,
            self.queue,
            stuck_after=self.settings.stuck_after,
            undeliverable_after=self.settings.undeliverable_after,
            check_every=self.settings.check_every,
        )
        self.dispatcher = Dispatcher(store, self.queue, on_outcome=self._observe)
        self.ingest = Ingest(nc, store, on_outcome=self._observe)
        self.advisories = MaxDeliveries(nc, store)
        self.tasks = TaskService(NatsBus(nc), store, task_inbox(nc))
        self._observers: list[Callable[[str, Outcome], None]] = []

    def add_observer(self, observer: Callable[[str, Outcome], None]) -> None:
        """Be told of every job outcome the dispatcher or the ingest records."""
        self._observers.append(observer)

    def _observe(self, job_id: str, outcome: Outcome) -> None:
        trace_id = next((e.envelope.trace_id for e in outcome.appended), None)
        self.watchdog.observe(job_id, outcome.state, trace_id=trace_id)
        for observer in self._observers:
            observer(job_id, outcome)

    async def run_work(self, stop: asyncio.Event) -> None:
        """Ingest, advisories and the watchdog until `stop`; in-flight ingest is finished."""
        await asyncio.gather(
            self.ingest.run(stop),
            self.advisories.run(stop),
            self.watchdog.run(stop),
            self.tasks.run(stop),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Work and heartbeat until `stop` (a Brain that is always the only one)."""
        try:
            await asyncio.gather(
                self.run_work(stop),
                heartbeat.beat(
                    NatsBus(self._nc), "brain", self.instance, self.details, stop,
                    self.settings.heartbeat_every,
                ),
            )  # fmt: skip
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
