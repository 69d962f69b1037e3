"""Time, injected where it matters (timeouts, cadences), so tests can move it by hand."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""
        ...


async def sleep_unless(clock: Clock, stop: asyncio.Event, seconds: float) -> None:
    """Sleep on `clock`, or less if `stop` is set meanwhile."""
    if stop.is_set():
        return
    napping = asyncio.ensure_future(clock.sleep(seconds))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({napping, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (napping, stopping):
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
