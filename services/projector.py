"""The projector daemon: folds `BAKER_EVENTS` into the read model (a SQLite file, or
PostgreSQL when `BAKER_DB` is a URL), exactly once.

It reads from the checkpoint + 1 and applies batches (up to N events or T ms) in one
transaction together with the checkpoint, so after a crash it resumes exactly where the
database says. A sequence gap it cannot explain, or a read model ahead of the stream, stops it
loudly: `run` raises, and its heartbeats end with a last one that says it is stopping. A
projection whose code version changed is rebuilt blue-green on start. If another process swaps
in a rebuilt generation, the projector notices after its current batch and continues on the
new generation. Its heartbeat carries the lag (stream head - checkpoint).
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

from adapters.eventstore import EventStore
from adapters.readmodel import ReadModelStore, StoreWriter
from projections.engine import BatchResult, apply_batch, init_checkpoints, read_checkpoints
from projections.prepared import PreparedBatch, prepare_batch, write_prepared
from projections.row_cache import RowCache
from projections.schema import PROJECTIONS
from projections.sql import WriteDb
from services.ports.topics import Heartbeat
from services.rebuild import as_store, rebuild

log = logging.getLogger("baker.projector")


class ReadModelAhead(Exception):
    """The read model holds events the stream does not: another stream, or it was recreated."""

    def __init__(self, checkpoint: int, head: int) -> None:
        super().__init__(
            f"the read model is at seq {checkpoint} but the event log ends at seq {head}: "
            "BAKER_DB belongs to another event log (or the stream was recreated); "
            "refusing to skip the events that would come next"
        )
        self.checkpoint = checkpoint
        self.head = head


class ProjectorFailed(RuntimeError):
    """A projector running inside another process stopped on an error."""


@dataclass(frozen=True)
class ProjectorSettings:
    batch: int = 1000  # a transaction holds at most this many events...
    max_wait: float = 0.005  # ...or what arrived this long after its first (small: reads
    # of one's own write wait for it)
    heartbeat_every: float = 30.0
    # Batches at least this big are folded ahead on a thread while the one before is written;
    # a smaller one is folded by the writer (the hop to a thread costs more than it saves).
    fold_ahead_from: int = 100


class Projector:
    def __init__(
        self,
        store: EventStore,
        read_model: Path | ReadModelStore,
        settings: ProjectorSettings | None = None,
        *,
        heartbeat: Heartbeat | None = None,
        instance: str | None = None,
    ) -> None:
        self.store = store
        self.read_model = as_store(read_model)
        self.settings = settings or ProjectorSettings()
        self.instance = instance or f"projector-{uuid.uuid4().hex[:8]}"
        self._heartbeat = heartbeat
        self.writer: StoreWriter | None = None
        self.checkpoints: dict[str, int] = {}
        self.applied = 0
        self.head = 0  # the stream's last sequence when last measured
        self.events = 0
        self.batches = 0
        self.dead_letters = 0
        self.rows = RowCache()  # the rows folded last (`projections.row_cache`)
        self.folded_ahead = 0  # batches written as folded while the one before was written
        self._generation: str | None = None
        self._progress = asyncio.Condition()

    async def open(self) -> None:
        """Open the current generation; rebuild projections whose version changed.
        `ReadModelAhead` if the database holds events the stream does not."""
        try:
            await self.read_model.initialise()
            await self._open_current()
            for name in await self._outdated():
                log.warning("projection %s changed version: rebuilding it blue-green", name)
                await self.close()
                await rebuild(self.store, self.read_model, projection=name)
                await self._open_current()
            self.head = await self.store.head_seq()
            ahead = max(self.checkpoints.values(), default=0)
            if ahead > self.head:
                raise ReadModelAhead(ahead, self.head)
        except BaseException:
            await self.close()  # an open connection's thread would keep the process alive
            raise

    async def _open_current(self) -> None:
        rm = self.read_model
        self._generation = await rm.current()
        self.rows = RowCache()
        self.writer = writer = await rm.open_writer(self._generation)
        stored = await writer.run(lambda db: _prepared(rm, db))
        self.checkpoints = {name: seq for name, (seq, _v) in stored.items() if name in PROJECTIONS}
        self.applied = min(self.checkpoints.values(), default=0)

    async def _outdated(self) -> list[str]:
        assert self.writer is not None
        stored = await self.writer.run(read_checkpoints)
        return [
            n for n, (_s, v) in stored.items() if n in PROJECTIONS and v != PROJECTIONS[n].version
        ]

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the log until `stop`; the batch in hand is always finished first. Any error
        (a sequence gap, the store or the database failing) ends the heartbeats and is raised."""
        if self.writer is None:
            await self.open()
        ended = asyncio.Event()  # not `stop`: an error must end the heartbeats too
        beats = None
        if self._heartbeat is not None:
            with contextlib.suppress(Exception):  # the first beat carries the starting lag
                await asyncio.wait_for(self.measure(), 2.0)
            beats = asyncio.ensure_future(
                self._heartbeat(self.instance, self.details, ended, refresh=self.measure)
            )
        try:
            while not stop.is_set():
                await self._follow(stop)
                if await self._swapped():
                    await self.close()
                    await self._open_current()
                    log.info("continuing on %s from seq %d", self._generation, self.applied)
        except Exception as exc:
            log.error(
                "projector %s stopped after seq %d: %s", self.instance, self.applied, exc,
                extra={"instance": self.instance, "seq": self.applied},
            )  # fmt: skip
            raise
        finally:
            ended.set()
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
        # The batch in hand is written (on the writer's thread) while the next one is read
        # and folded (`projections.prepared`): one batch ahead at most, applied strictly in
        # order, each awaited before the next.
        writing: asyncio.Future[None] | None = None
        ahead: PreparedBatch | None = None  # the batch being written, if it was folded ahead
        try:
            async for batch in batches:
                if writing is not None and ahead is None:
                    await writing  # its checkpoints are what the next batch folds after
                    writing = None
                after = ahead.result.checkpoints if ahead is not None else self.checkpoints
                prepared = await self._prepare(batch, after)
                if writing is not None:
                    await writing
                    writing = None
                if stop.is_set() or await self._swapped():
                    return  # a batch in hand is read again from the new generation's checkpoint
                ahead = prepared
                if batch:
                    writing = asyncio.ensure_future(self.apply(batch, prepared))
        finally:
            try:
                if writing is not None:
                    await writing
            finally:
                await batches.aclose()

    async def _prepare(self, batch: list[Any], after: dict[str, int]) -> PreparedBatch | None:
        if len(batch) < self.settings.fold_ahead_from or not self.rows.follows(after):
            return None
        return await asyncio.to_thread(prepare_batch, batch, after, self.rows)

    async def apply(self, batch: list[Any], prepared: PreparedBatch | None = None) -> None:
        assert self.writer is not None
        checkpoints, rows = self.checkpoints, self.rows

        def write(db: Any) -> tuple[BatchResult, bool]:
            if prepared is not None:
                done = write_prepared(db, prepared, rows)
                if done is not None:
                    return done, True
            return apply_batch(db, batch, checkpoints, cache=rows), False

        result, ahead = await self.writer.run(write)
        self.folded_ahead += ahead
        self.checkpoints = result.checkpoints
        self.dead_letters += result.dead_letters
        self.events += len(batch)
        self.batches += 1
        if await self._swapped():
            # Readers already follow the new generation, which lacks this batch: progress is
            # announced once it is applied there, or `wait_for` would promise a stale read.
            return
        async with self._progress:
            self.applied = batch[-1].seq
            self._progress.notify_all()

    async def _swapped(self) -> bool:
        return await self.read_model.current() != self._generation

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

    async def measure(self) -> int:
        """Read the stream head now; returns the lag (events not yet in the read model)."""
        self.head = max(self.head, await self.store.head_seq())
        return self.lag_now

    @property
    def lag_now(self) -> int:
        """The lag as of the last measure (the head only grows, so it never over-reports)."""
        return max(0, self.head - self.applied)

    async def lag(self) -> int:
        """Events in the log not yet in the read model (measured now)."""
        return await self.measure()

    def details(self) -> dict[str, Any]:
        """Heartbeat details; `lag` is what `/metrics` calls `baker_projector_lag_events`."""
        return {
            "applied": self.applied,
            "head": self.head,
            "lag": self.lag_now,
            "events": self.events,
            "batches": self.batches,
            "deadLetters": self.dead_letters,
            "db": str(self._generation),
        }

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
            self.writer = None
        await self.read_model.close()


async def rate_meter(projector: Projector, every: float = 10.0) -> None:
    """Log the projector's throughput now and then (long-running progress)."""
    last, then = projector.events, time.monotonic()
    while True:
        await asyncio.sleep(every)
        now = time.monotonic()
        rate = (projector.events - last) / (now - then)
        if rate:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(projector.measure(), 2.0)
            log.info(
                "applied up to seq %d (%.0f events/s, lag %d)",
                projector.applied, rate, projector.lag_now,
            )  # fmt: skip
        last, then = projector.events, now


def _prepared(rm: ReadModelStore, db: WriteDb) -> dict[str, tuple[int, int]]:
    """The schema and a checkpoint for every projection in place; the checkpoints."""
    rm.ensure_schema(db)
    init_checkpoints(db)
    return read_checkpoints(db)
