"""Time as a dependency: what the heartbeat loop, the monitor's offline/down detection and the
task deadlines read and wait on. `SystemClock` is the real one; tests hand in a manual clock
(`tests.fakes.clock.FakeClock`) and move it forward instead of waiting."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds (only differences mean something)."""

    def wall(self) -> datetime:
        """The current UTC time."""

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` have passed on this clock."""


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM = SystemClock()


async def pause(clock: Clock, seconds: float, stop: asyncio.Event) -> bool:
    """Wait `seconds` on `clock` or until `stop` is set, whichever comes first; True if stopped."""
    if stop.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        stopper.cancel()
    return stop.is_set()


async def within(clock: Clock, seconds: float, work: asyncio.Future[Any]) -> bool:
    """Wait for `work` for at most `seconds` on `clock`; True if it finished in time (it is
    left running otherwise: the caller decides what to do with it)."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({sleeper, work}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
    return work.done()
