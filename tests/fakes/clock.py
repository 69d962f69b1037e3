"""A manual clock for tests: time moves only when the test says so.

    clock = FakeClock()
    task = asyncio.create_task(loop_that_sleeps_30s(clock))
    await clock.sleepers(1)        # the loop is asleep now (polls, never sleeps for real)
    await clock.advance(30)        # wakes it, at exactly now + 30

`advance` moves through the sleepers' deadlines in order: each one wakes with the clock set to
its own deadline, and gets turns of the event loop to run until it waits again before the clock
moves on. So a loop that sleeps 5 s sweeps six times in `advance(30)`, each at its own time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

from tests.polling import until

TURNS = 50  # event-loop turns given to woken sleepers before the clock moves on


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = 1_000.0
        self._epoch = start or datetime.now(UTC)  # wall time at `now() == 1000`
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._epoch + timedelta(seconds=self._now - 1_000.0)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), woken))
        try:
            await woken
        finally:
            if not woken.done():
                woken.cancel()  # a cancelled sleeper is skipped when its deadline comes

    def set_wall(self, moment: datetime) -> None:
        """Make `wall()` read `moment` now (as another process's clock would); `now()` and the
        sleepers are unaffected."""
        self._epoch = moment - timedelta(seconds=self._now - 1_000.0)

    @property
    def waiting(self) -> int:
        """How many sleepers wait on this clock now."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        live = [d for d, _, f in self._sleepers if not f.done()]
        return min(live) if live else None

    async def sleepers(self, count: int, within: float = 10.0) -> None:
        """Wait (polling, on real time) until at least `count` sleepers wait on the clock."""
        what = f"{count} sleepers on the fake clock"
        await until(lambda: self.waiting >= count, what, timeout=within, every=0.001)

    async def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`, waking every sleeper whose time comes, in order."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, woken = heapq.heappop(self._sleepers)
            if woken.done():
                continue
            self._now = max(self._now, deadline)
            woken.set_result(None)
            await settle()
        self._now = target
        await settle()

    async def advance_to(self, moment: float) -> None:
        await self.advance(max(0.0, moment - self._now))


async def settle(turns: int = TURNS) -> None:
    """Let every task that is ready run until it waits again (loop turns; no time passes)."""
    for _ in range(turns):
        await asyncio.sleep(0)
