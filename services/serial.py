"""Run work one item after another per key, and concurrently across keys."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any


class KeyedSerial:
    """Tasks submitted under the same key run in submission order, never overlapping."""

    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Task[Any]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    def submit(self, key: str, work: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
        previous = self._tails.get(key)

        async def run() -> Any:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(previous)
            return await work()

        task = asyncio.create_task(run())
        self._tails[key] = task
        self.tasks.add(task)
        task.add_done_callback(lambda t: self._done(key, t))
        return task

    def _done(self, key: str, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if self._tails.get(key) is task:
            del self._tails[key]

    async def drain(self) -> None:
        """Wait for everything submitted so far."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
