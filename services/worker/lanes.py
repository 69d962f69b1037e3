"""A worker's work source over the priority lanes (DESIGN §11): with free slots it asks the
`high` lane first, then `normal`, then `low`, so when workers are saturated a queued high job
starts before older normal and low ones.

Each lane is its own durable consumer (a consumer delivers in stream order, so one consumer
could not reorder). Asking an empty lane costs a `no_wait` pull, a round trip per job taken;
so a `high` or `low` lane found empty is not asked again until a hint says a job was queued
on it (`LaneHints`: core NATS hands each publish on a lane's subject to the worker too), or
after `forget` seconds (a hint can come a moment before its job can be fetched). `normal`, the
busy lane, is always asked. When every lane is empty the worker waits with one waiting pull
(batch 1) on `normal` only and is woken early by a hint for `high` or `low`: a pull cannot be
taken back, so a pull still open counts against the free slots until it ends, and pulls left
open on quiet lanes would keep a burst on `normal` from filling the worker. Without hints it
waits with one pull per lane, as far as its free slots allow (with fewer free slots than lanes,
`normal` first and only briefly, `recheck`), and is never handed more jobs than it has slots.

With hints, `normal` is not asked with a `no_wait` pull when the last job taken from it left it
empty (the `pending` count a delivery carries) and no lane after it is known to hold a job:
that pull would come back empty, a round trip per job at a trickle, and the waiting pull that
follows takes at once whatever came since.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from domain.priority import DEFAULT_PRIORITY, PRIORITIES
from services.ports.jobs import Delivery, DeliverySource, LaneHints
from services.ports.topics import Subscription

Pull = asyncio.Future[Sequence[Delivery]]


class LaneSource:
    """`WorkSource` over `lanes` (named `names`), highest priority first; `wait_first`: the
    index of the busy lane, always asked and waited on first when slots are short."""

    def __init__(
        self,
        lanes: Sequence[DeliverySource],
        *,
        names: Sequence[str] = PRIORITIES,
        wait_first: int = 0,
        hints: LaneHints | None = None,
        recheck: float = 0.25,
        forget: float = 0.5,
    ) -> None:
        self._lanes = list(lanes)
        self._index = {name: i for i, name in enumerate(names)}
        self._wait_first = wait_first
        self._wait_order = [wait_first, *(i for i in range(len(self._lanes)) if i != wait_first)]
        self._recheck = recheck
        self._forget = forget
        self._hints = hints
        self._watching: Subscription | None = None
        self._empty: dict[int, float] = {}  # lane -> when it was found empty (no hint since)
        self._heard = [0] * len(self._lanes)  # hints per lane, to tell one during an ask
        self._open: dict[int, Pull] = {}  # waiting pulls still open, by lane
        self._drained = False  # the busy lane's last delivery left it empty
        self._hinted = asyncio.Event()  # a hint came for a quiet lane

    async def fetch(self, n: int, wait: float) -> list[Delivery]:
        if self._hints is not None and self._watching is None:
            self._watching = await self._hints.watch_lanes(self._on_queued)
        got = self._finished()
        budget = n - len(got) - len(self._open)
        for i, lane in enumerate(self._lanes):
            if budget <= 0:
                break
            if i in self._open or self._known_empty(i):  # an open pull takes what comes
                continue
            if i == self._wait_first and wait > 0 and self._skip_busy_probe():
                continue
            heard = self._heard[i]
            more = await lane.fetch(budget, wait=0)
            if i == self._wait_first:
                self._drained = not more or more[-1].pending == 0
            # no hint while asking: empty until one comes
            hinted = self._watching is not None and i != self._wait_first
            if not more and hinted and self._heard[i] == heard:
                self._empty[i] = time.monotonic()
            got.extend(more)
            budget -= len(more)
        if got or wait <= 0:
            return got
        if self._watching is not None:
            await self._wait_busy_lane(budget, wait)
            return self._finished()
        idle = [i for i in self._wait_order if i not in self._open]
        limit = wait if budget >= len(idle) else min(wait, self._recheck)
        for i in idle[: max(budget, 0)]:
            self._open[i] = asyncio.ensure_future(self._lanes[i].fetch(1, wait=limit))
        if self._open:
            await asyncio.wait(set(self._open.values()), return_when=asyncio.FIRST_COMPLETED)
        return self._finished()

    async def _wait_busy_lane(self, budget: int, wait: float) -> None:
        """Idle with hints: one waiting pull on the busy lane only, woken early by a hint.
        Pulls left open on the quiet lanes would each hold a slot until they expire, so a
        burst on the busy lane would find the worker running below its concurrency."""
        i = self._wait_first
        if i not in self._open and budget > 0:
            limit = min(wait, self._forget)  # quiet lanes are looked at again this often
            self._open[i] = asyncio.ensure_future(self._lanes[i].fetch(1, wait=limit))
        self._hinted.clear()
        hint = asyncio.ensure_future(self._hinted.wait())
        waits: set[asyncio.Future[Any]] = {hint, *self._open.values()}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hint.cancel()

    def _skip_busy_probe(self) -> bool:
        """The busy lane's probe would come back empty, and skipping it reorders nothing:
        every lane after it is known to be empty (only hints say so)."""
        after = range(self._wait_first + 1, len(self._lanes))
        return (
            self._drained
            and self._watching is not None
            and all(self._known_empty(j) for j in after)
        )

    def _known_empty(self, i: int) -> bool:
        since = self._empty.get(i)
        if since is None:
            return False
        if time.monotonic() - since < self._forget:
            return True
        del self._empty[i]
        return False

    def _on_queued(self, lane: str) -> None:
        i = self._index.get(lane)
        if i is not None:
            self._heard[i] += 1
            self._empty.pop(i, None)
            if i != self._wait_first:
                self._hinted.set()

    def _finished(self) -> list[Delivery]:
        """What ended pulls brought, in lane order (an error of one is raised)."""
        out: list[Delivery] = []
        for i in sorted(self._open):
            pull = self._open[i]
            if pull.done():
                del self._open[i]
                got = pull.result()
                if i == self._wait_first and got:
                    self._drained = got[-1].pending == 0
                out.extend(got)
        return out

    async def close(self) -> None:
        for pull in self._open.values():
            pull.cancel()
            with contextlib.suppress(BaseException):
                await pull
        self._open.clear()
        if self._watching is not None:
            await self._watching.unsubscribe()
            self._watching = None
        self._empty.clear()
        for lane in self._lanes:
            await lane.close()


def lane_source(lanes: Sequence[DeliverySource], hints: LaneHints | None = None) -> LaneSource:
    """One source per lane of `PRIORITIES` (high, normal, low), `normal` the busy one."""
    return LaneSource(lanes, wait_first=PRIORITIES.index(DEFAULT_PRIORITY), hints=hints)
