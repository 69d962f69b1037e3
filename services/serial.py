"""Run work one item after another per key, and concurrently across keys."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("baker.serial")
Work = Callable[[], Awaitable[Any]]


class KeyedSerial:
    """Work submitted under the same key runs in submission order, never overlapping.

    One task per key that has work, taking its items off a queue: a job's status and result
    messages, which tend to arrive together, cost one task rather than one each.
    """

    def __init__(self) -> None:
        self._queues: dict[str, deque[Work]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, key: str, work: Work) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(work)
            return
        self._queues[key] = deque((work,))
        task = asyncio.create_task(self._run(key))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                try:
                    await queue[0]()
                except Exception:  # one item's failure must not stop the ones behind it
                    log.exception("work for %s failed", key)
                queue.popleft()
        finally:
            del self._queues[key]

    async def drain(self) -> None:
        """Wait for everything submitted so far."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
