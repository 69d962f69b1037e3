"""The projector daemon: folds `BAKER_EVENTS` into the SQLite read model, exactly once.

It reads from the checkpoint + 1 and applies batches (up to N events or T ms) in one
transaction together with the checkpoint, so after a crash it resumes exactly where the
database says. A sequence gap it cannot explain stops it loudly. A projection whose code
version changed is rebuilt blue-green on start. If another process swaps in a rebuilt
generation, the projector notices after its current batch and continues on the new file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from nats.aio.client import Client as NATS

from adapters.eventstore import EventStore
from adapters.sqlite import current_target, ensure_schema, initialise, open_db
from projections.engine import apply_batch, init_checkpoints, read_checkpoints
from projections.schema import PROJECTIONS
from services import heartbeat
from services.rebuild import rebuild

log = logging.getLogger("baker.projector")


@dataclass(frozen=True)
class ProjectorSettings:
    batch: int = 1000
    max_wait: float = 0.005  # small: a client reads its own write a few ms later
    heartbeat_every: float = 30.0


class Projector:
    def __init__(
        self,
        store: EventStore,
        db_path: Path,
        settings: ProjectorSettings | None = None,
        *,
        nc: NATS | None = None,
        instance: str | None = None,
    ) -> None:
        self.store = store
        self.db_path = db_path
        self.settings = settings or ProjectorSettings()
        self.instance = instance or f"projector-{uuid.uuid4().hex[:8]}"
        self._nc = nc
        self.db: aiosqlite.Connection | None = None
        self.checkpoints: dict[str, int] = {}
        self.applied = 0
        self.events = 0
        self.dead_letters = 0
        self._generation: Path | None = None
        self._progress = asyncio.Condition()

    async def open(self) -> None:
        """Open the current generation; rebuild projections whose version changed."""
        initialise(self.db_path)
        await self._open_current()
        outdated = await self._outdated()
        for name in outdated:
            log.warning("projection %s changed version: rebuilding it blue-green", name)
            await self.close()
            await rebuild(self.store, self.db_path, projection=name)
            await self._open_current()

    async def _open_current(self) -> None:
        self._generation = current_target(self.db_path)
        self.db = await open_db(self.db_path)
        await ensure_schema(self.db)
        await init_checkpoints(self.db)
        stored = await read_checkpoints(self.db)
        self.checkpoints = {name: seq for name, (seq, _v) in stored.items() if name in PROJECTIONS}
        self.applied = min(self.checkpoints.values(), default=0)

    async def _outdated(self) -> list[str]:
        assert self.db is not None
        stored = await read_checkpoints(self.db)
        return [
            n for n, (_s, v) in stored.items() if n in PROJECTIONS and v != PROJECTIONS[n].version
        ]

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the log until `stop`; the batch in hand is always finished first."""
        if self.db is None:
            await self.open()
        beats = None
        if self._nc is not None:
            beats = asyncio.create_task(
                heartbeat.beat(self._nc, "projector", self.instance, self.details, stop,
                               self.settings.heartbeat_every)
            )  # fmt: skip
        try:
            while not stop.is_set():
                await self._follow(stop)
                if self._swapped():
                    await self.close()
                    await self._open_current()
                    log.info("continuing on %s from seq %d", self._generation, self.applied)
        finally:
            if beats is not None:
                await beats
            await self.close()

    async def _follow(self, stop: asyncio.Event) -> None:
        batches = self.store.tail_batches(
            self.applied + 1,
            max_batch=self.settings.batch,
            max_wait=self.settings.max_wait,
            idle=0.5,
        )
        try:
            async for batch in batches:
                if batch:
                    await self.apply(batch)
                if stop.is_set() or self._swapped():
                    return
        finally:
            await batches.aclose()

    async def apply(self, batch: list[Any]) -> None:
        assert self.db is not None
        result = await apply_batch(self.db, batch, self.checkpoints)
        self.checkpoints = result.checkpoints
        self.dead_letters += result.dead_letters
        self.events += len(batch)
        async with self._progress:
            self.applied = batch[-1].seq
            self._progress.notify_all()

    def _swapped(self) -> bool:
        return current_target(self.db_path) != self._generation

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Read-your-writes: True once event `seq` is in the read model (False on timeout)."""
        if self.applied >= seq:
            return True
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self.applied >= seq), timeout
                )
        return self.applied >= seq

    async def lag(self) -> int:
        """Events in the log not yet in the read model."""
        return max(0, await self.store.head_seq() - self.applied)

    def details(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "events": self.events,
            "deadLetters": self.dead_letters,
            "db": str(self._generation),
        }

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()
            self.db = None


async def rate_meter(projector: Projector, every: float = 10.0) -> None:
    """Log the projector's throughput now and then (long-running progress)."""
    last, then = projector.events, time.monotonic()
    while True:
        await asyncio.sleep(every)
        now = time.monotonic()
        rate = (projector.events - last) / (now - then)
        if rate:
            log.info("applied up to seq %d (%.0f events/s)", projector.applied, rate)
        last, then = projector.events, now
