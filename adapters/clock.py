"""The real clock: monotonic time, UTC wall time and asyncio's sleep."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime


class SystemClock:
    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    def wall() -> datetime:
        return datetime.now(UTC)

    @staticmethod
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
