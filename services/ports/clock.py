"""Time as a dependency, injected where it matters (timeouts, cadences, deadlines), so tests
move a fake clock (`tests.fakes.clock.FakeClock`) instead of waiting. The real clock is
`adapters.clock.SYSTEM_CLOCK`."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds (only differences mean something)."""
        ...

    def wall(self) -> datetime:
        """The current UTC time."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""
        ...


async def pause(clock: Clock, seconds: float, stop: asyncio.Event) -> bool:
    """Wait `seconds` on `clock` or until `stop` is set, whichever comes first; True if
    stopped."""
    if stop.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (sleeper, stopper):
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
    return stop.is_set()


async def within(clock: Clock, seconds: float, work: asyncio.Future[Any]) -> bool:
    """Wait for `work` for at most `seconds` on `clock`; True if it finished in time (it is
    left running otherwise: the caller decides what to do with it)."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({sleeper, work}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sleeper
    return work.done()
