"""Leadership and fencing: only the Brain holding the current generation may change jobs.

The generation lives in a KV key changed by compare-and-set. Every append of this Brain's
work (jobs, tasks) is checked against it first; a Brain that learns a newer generation exists
refuses to append at once. Brain and handoff aggregates stay writable: a Brain always records
its own role changes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.nats.leader import Leader, LeaderRecord, LeadershipTaken

log = logging.getLogger("baker.brain.leadership")
UNFENCED = frozenset({"brain", "handoff"})


class Fenced(Exception):
    """This Brain is not (or no longer) the leader: it may not change jobs or tasks."""


class Leadership:
    def __init__(self, record: LeaderRecord, instance: str, version: str) -> None:
        self.record = record
        self.instance = instance
        self.version = version
        self.mine: int | None = None  # the generation this Brain took, if any
        self.current: Leader | None = None
        self._on_lost: Callable[[Leader], Awaitable[None]] | None = None
        self._sub: Any = None

    @property
    def leading(self) -> bool:
        current = self.current
        return (
            self.mine is not None
            and current is not None
            and current.instance == self.instance
            and current.generation == self.mine
        )

    def check(self, aggregate: str) -> None:
        """The event store's fence: raise `Fenced` unless this Brain leads."""
        if aggregate in UNFENCED or self.leading:
            return
        current = self.current
        holder = f"{current.instance} (generation {current.generation})" if current else "nobody"
        raise Fenced(f"{self.instance} may not append {aggregate} events: the leader is {holder}")

    async def refresh(self) -> Leader | None:
        self.current = await self.record.read()
        return self.current

    async def take(self, attempts: int = 5) -> Leader:
        """Take the next generation (compare-and-set on the current record)."""
        for _ in range(attempts):
            current = await self.refresh()
            try:
                taken = await self.record.take(self.instance, self.version, current)
            except LeadershipTaken:
                continue  # someone moved it in between: read again and go on top of it
            self.mine, self.current = taken.generation, taken
            log.info("leading with generation %d", taken.generation)
            return taken
        raise LeadershipTaken(f"{self.instance}: the leader record kept changing")

    async def watch(self, on_lost: Callable[[Leader], Awaitable[None]]) -> None:
        """Be told when another Brain takes a newer generation."""
        self._on_lost = on_lost
        self._sub = await self.record.watch(self._changed)

    async def _changed(self, _seen: Leader) -> None:
        # A core subscriber also sees publishes the stream refused (a lost compare-and-set):
        # read the stored record before believing anything.
        current = await self.refresh()
        if self.mine is not None and current is not None and current.generation > self.mine:
            log.warning("fenced: %s took generation %d", current.instance, current.generation)
            if self._on_lost is not None:
                await self._on_lost(current)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
        await self.record.close()
