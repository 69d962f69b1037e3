"""Admission to the job queue: keep room in `BAKER_JOBS` for status and result messages.

Workers report into the same stream the jobs wait in (DESIGN §2). If dispatches filled it to
its limit, no worker could publish `received` for the job it took, so nothing would ever
drain: every queued job would end `max_deliveries` without running. The Brain therefore
admits new jobs only while the stream holds fewer than its limit minus a reserve (a tenth of
it), and refuses the rest with `QueueFull` before anything is recorded.

The stream's count is read at most every `refresh_every` seconds; between reads every
admitted job is counted as one more message, so a burst cannot overshoot the limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from domain.queue import QueueFull

log = logging.getLogger("baker.brain.admission")


class QueueFill(Protocol):
    async def fill(self) -> tuple[int, int]:
        """(messages in the stream, its message limit; 0 or less for none)."""
        ...


def reserve_for(limit: int) -> int:
    """Messages kept free for status and result traffic."""
    return max(1, limit // 10)


class Admission:
    def __init__(self, queue: QueueFill, refresh_every: float = 0.25) -> None:
        self._queue = queue
        self._refresh_every = refresh_every
        self._base = 0  # messages at the last read, plus jobs not yet stored when it began
        self._limit = 0
        self._admitted = 0  # ever
        self._admitted_at_read = 0
        self._unstored = 0  # admitted, queue publish not finished
        self._read_at = float("-inf")
        self._reads = 0  # reads finished; a caller that waited behind one needs no other
        self._lock = asyncio.Lock()
        self.refused = 0

    def _estimate(self) -> int:
        return self._base + self._admitted - self._admitted_at_read

    def _room(self) -> bool:
        return self._limit <= 0 or self._estimate() < self._limit - reserve_for(self._limit)

    async def admit(self) -> None:
        """Count one more job in the queue, or raise `QueueFull` when there is no room.
        Call `stored()` once its queue publish has finished, whatever the outcome."""
        if time.monotonic() - self._read_at >= self._refresh_every or not self._room():
            await self._refresh(self._reads)
        if not self._room():
            self.refused += 1
            raise QueueFull(
                f"the job queue is full ({self._estimate()} of "
                f"{self._limit - reserve_for(self._limit)} places taken; the rest of its "
                f"{self._limit} is kept for status messages)"
            )
        self._admitted += 1
        self._unstored += 1

    def stored(self) -> None:
        self._unstored -= 1

    async def _refresh(self, seen: int) -> None:
        async with self._lock:
            if self._reads != seen:
                return  # read while we waited: a burst of callers shares one read
            admitted, unstored = self._admitted, self._unstored
            try:
                messages, limit = await self._queue.fill()
            except Exception as exc:  # the publish will say what is wrong; JetStream's own
                # limit still holds, so a failed read only delays the next one
                log.warning("could not read the job queue's size: %r", exc)
                self._read_at = time.monotonic()
                self._reads += 1
                return
            # Jobs still on their way when we asked may or may not be in `messages`: count
            # them (over-counting for a moment is safe; under-counting is not).
            self._base, self._limit = messages + unstored, limit
            self._admitted_at_read = admitted
            self._read_at = time.monotonic()
            self._reads += 1
