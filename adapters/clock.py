"""The real clock: monotonic time and asyncio's sleep."""

from __future__ import annotations

import asyncio
import time


class SystemClock:
    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
