"""A worker's work source over the priority lanes (DESIGN §11): with free slots it asks the
`high` lane first, then `normal`, then `low`, so when workers are saturated a queued high job
starts before older normal and low ones.

Each lane is its own durable consumer (a consumer delivers in stream order, so one consumer
could not reorder). Looking at a lane that is empty costs a `no_wait` pull (one round trip).
When every lane is empty the worker waits for the first job on any of them with one waiting
pull (batch 1) per lane, as far as its free slots allow: a pull cannot be taken back, so a
pull still open counts against the free slots until it ends, and the worker is never handed
more jobs than it has slots. With fewer free slots than lanes, the `normal` lane is waited on
first and the wait is short (`recheck`), so the other lanes are looked at again soon.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from domain.priority import DEFAULT_PRIORITY, PRIORITIES
from services.ports.jobs import Delivery, DeliverySource

Pull = asyncio.Future[Sequence[Delivery]]


class LaneSource:
    """`WorkSource` over `lanes`, highest priority first; `wait_first`: the index of the lane
    to wait on first when slots are short (the busiest: `normal`)."""

    def __init__(
        self, lanes: Sequence[DeliverySource], *, wait_first: int = 0, recheck: float = 0.25
    ) -> None:
        self._lanes = list(lanes)
        rest = [i for i in range(len(self._lanes)) if i != wait_first]
        self._wait_order = [wait_first, *rest]
        self._recheck = recheck
        self._open: dict[int, Pull] = {}  # waiting pulls still open, by lane

    async def fetch(self, n: int, wait: float) -> list[Delivery]:
        got = self._finished()
        budget = n - len(got) - len(self._open)
        for i, lane in enumerate(self._lanes):
            if budget <= 0:
                break
            if i in self._open:  # its open pull takes what arrives there
                continue
            more = await lane.fetch(budget, wait=0)
            got.extend(more)
            budget -= len(more)
        if got or wait <= 0:
            return got
        idle = [i for i in self._wait_order if i not in self._open]
        limit = wait if budget >= len(idle) else min(wait, self._recheck)
        for i in idle[: max(budget, 0)]:
            self._open[i] = asyncio.ensure_future(self._lanes[i].fetch(1, wait=limit))
        if self._open:
            await asyncio.wait(set(self._open.values()), return_when=asyncio.FIRST_COMPLETED)
        return self._finished()

    def _finished(self) -> list[Delivery]:
        """What ended pulls brought, in lane order (an error of one is raised)."""
        out: list[Delivery] = []
        for i in sorted(self._open):
            pull = self._open[i]
            if pull.done():
                del self._open[i]
                out.extend(pull.result())
        return out

    async def close(self) -> None:
        for pull in self._open.values():
            pull.cancel()
            with contextlib.suppress(BaseException):
                await pull
        self._open.clear()
        for lane in self._lanes:
            await lane.close()


def lane_source(lanes: Sequence[DeliverySource]) -> LaneSource:
    """One source per lane of `PRIORITIES` (high, normal, low), waiting on `normal` first."""
    return LaneSource(lanes, wait_first=PRIORITIES.index(DEFAULT_PRIORITY))
