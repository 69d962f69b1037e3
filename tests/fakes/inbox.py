"""An in-memory work queue with the inbox port (`services.ports.inbox`) for unit tests.

`put` adds a message as a publisher to the stream would; `acked`, `termed` and `pending` tell
what became of them. A nak's delay runs on the `clock` given (a `FakeClock` in timing tests).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from services.clock import SYSTEM, Clock


@dataclass
class FakeDelivery:
    queue: FakeQueue
    subject: str
    data: bytes
    headers: Mapping[str, str] | None
    sequence: int
    deliveries: int = 1
    settled: bool = False

    async def ack(self) -> None:
        self.queue._settle(self, "acked")

    async def term(self) -> None:
        self.queue._settle(self, "termed")

    async def nak(self, delay: float = 0.0) -> None:
        self.queue._settle(self, "nakked")
        again = FakeDelivery(
            self.queue, self.subject, self.data, self.headers, self.sequence, self.deliveries + 1
        )
        if delay <= 0:
            self.queue._offer(again)
            return
        self.queue._later.add(asyncio.create_task(self.queue._after(delay, again)))


class FakeQueue:
    """The queue itself; `open` is the port's `OpenInbox`."""

    def __init__(self, clock: Clock = SYSTEM) -> None:
        self.clock = clock
        self.acked: list[FakeDelivery] = []
        self.termed: list[FakeDelivery] = []
        self.nakked: list[FakeDelivery] = []
        self._ready: list[FakeDelivery] = []
        self._held: set[int] = set()
        self._seqs = itertools.count(1)
        self._arrived = asyncio.Event()
        self._later: set[asyncio.Task[None]] = set()

    def put(self, subject: str, data: bytes, headers: Mapping[str, str] | None = None) -> int:
        seq = next(self._seqs)
        self._offer(FakeDelivery(self, subject, data, headers, seq))
        return seq

    @property
    def pending(self) -> int:
        """Messages not settled yet (waiting or handed out)."""
        return len(self._ready) + len(self._held)

    async def open(self) -> FakeInbox:
        return FakeInbox(self)

    def _offer(self, item: FakeDelivery) -> None:
        self._ready.append(item)
        self._ready.sort(key=lambda d: d.sequence)
        self._arrived.set()

    async def _after(self, delay: float, item: FakeDelivery) -> None:
        self._held.add(item.sequence)  # still pending while it waits for its redelivery
        await self.clock.sleep(delay)
        self._held.discard(item.sequence)
        self._offer(item)

    def _take(self, batch: int) -> list[FakeDelivery]:
        taken, self._ready = self._ready[:batch], self._ready[batch:]
        self._held.update(d.sequence for d in taken)
        if not self._ready:
            self._arrived.clear()
        return taken

    def _settle(self, item: FakeDelivery, how: str) -> None:
        assert not item.settled, f"delivery {item.sequence} settled twice"
        item.settled = True
        self._held.discard(item.sequence)
        getattr(self, how).append(item)


class FakeInbox:
    def __init__(self, queue: FakeQueue) -> None:
        self._queue = queue

    async def fetch(self, batch: int, wait: float) -> list[FakeDelivery]:
        if not self._queue._ready:
            try:
                await asyncio.wait_for(self._queue._arrived.wait(), wait)
            except TimeoutError:
                return []
        return self._queue._take(batch)

    async def close(self) -> None:
        return None
