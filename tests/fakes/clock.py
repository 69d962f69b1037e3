"""A clock that moves only when a test moves it (`services.ports.clock.Clock`)."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class ManualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)  # a zero sleep still lets others run, as asyncio's does
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future  # a cancelled sleep leaves a cancelled future, skipped when it is due

    @property
    def sleepers(self) -> int:
        """Sleeps not yet over (and not cancelled)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_wake(self) -> float | None:
        live = [at for at, _, f in self._sleepers if not f.done()]
        return min(live) if live else None

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleep that ends on the way, in order; each woken
        task runs (up to its next wait) before time moves on, so sleeps it starts then are
        woken too if they end within `seconds`."""
        until = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= until:
            at, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, at)
            if not future.done():
                future.set_result(None)
                await settle()
        self._now = until
        await settle()


async def settle(turns: int = 20) -> None:
    """Let every task that is ready run until it waits again (a few loop turns)."""
    for _ in range(turns):
        await asyncio.sleep(0)
