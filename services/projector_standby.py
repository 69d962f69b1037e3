"""Standby projectors (DESIGN §13): several projectors on one read model, exactly one applying.

Each candidate (`baker projector`, and the Brain's own projector) runs this loop around a
`Projector`. Whoever holds the read model's lease (`services.lease`) applies; the others stand
by, reading the lease every `check_every` seconds, and take it over once it expires: from the
read model's checkpoint, as a restarted projector would. The holder stops applying the moment
it cannot renew (no new batch starts; a batch in flight is one transaction, which re-reads the
checkpoints inside it, so no event is ever applied twice even in a race). A standby's
heartbeat says `state: standby`; its read-your-writes (`wait_for`) follows the checkpoint the
active projector writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from adapters.clock import SYSTEM_CLOCK
from services.lease import LeaseCandidate
from services.ports.clock import Clock, pause
from services.ports.topics import Heartbeat
from services.projector import Projector

log = logging.getLogger("baker.projector")
Checkpoint = Callable[[], Awaitable[int]]


class StandbyProjector:
    def __init__(
        self,
        projector: Projector,
        candidate: LeaseCandidate,
        *,
        checkpoint: Checkpoint | None = None,
        heartbeat: Heartbeat | None = None,
        heartbeat_every: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
        poll: float = 0.02,
    ) -> None:
        """`checkpoint`: the read model's applied seq as the database has it (what a standby
        watches); without it a standby knows only what it applied itself."""
        self.projector = projector
        self.candidate = candidate
        self._checkpoint = checkpoint
        self._heartbeat = heartbeat
        self._clock = clock
        self._poll = poll
        self.state: Literal["standby", "active"] = "standby"
        self.terms = 0  # how many times this one took the lease
        self.observed = 0  # the checkpoint as last read while standing by
        self.head = 0

    @property
    def instance(self) -> str:
        return self.projector.instance

    @property
    def applied(self) -> int:
        if self.state == "active":
            return self.projector.applied
        return max(self.observed, self.projector.applied)

    async def open(self) -> None:
        """Check the read model (`ReadModelAhead`, a gap) and prepare it, as `Projector.open`
        does; the writer is closed again until this one holds the lease."""
        await self.projector.open()

    async def run(self, stop: asyncio.Event) -> None:
        """Stand by or apply until `stop`; the lease is released on the way out. An error of
        the projector ends the loop and is raised."""
        ended = asyncio.Event()
        beats = None
        if self._heartbeat is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.measure(), 2.0)
            beats = asyncio.ensure_future(
                self._heartbeat(self.instance, self.details, ended, refresh=self.measure)
            )
        try:
            while not stop.is_set():
                if await self.candidate.try_acquire():
                    await self._term(stop)
                    continue
                if self.projector.writer is not None:
                    await self.projector.close()  # a standby holds no writer
                await pause(self._clock, self.candidate.settings.check_every, stop)
        finally:
            self.state = "standby"
            await self.candidate.release()
            ended.set()
            if beats is not None:
                await beats
            await self.projector.close()

    async def _term(self, stop: asyncio.Event) -> None:
        """Apply while the lease is held; return when it is lost or `stop` is set."""
        self.state, self.terms = "active", self.terms + 1
        await self.projector.close()  # reopened by `run`: the checkpoints as they are now
        term = asyncio.Event()
        applying = asyncio.ensure_future(self.projector.run(term))
        keeping = asyncio.ensure_future(self.candidate.keep(stop))
        stopping = asyncio.ensure_future(stop.wait())
        log.info(
            "projector %s holds the lease: applying from the checkpoint", self.instance,
            extra={"instance": self.instance},
        )  # fmt: skip
        try:
            await asyncio.wait({applying, keeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            term.set()  # no new batch starts from here on
            for waiter in (keeping, stopping):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
            try:
                await applying  # the batch in flight ends; an error of the projector is raised
            finally:
                self.state = "standby"
        if not stop.is_set():
            log.warning(
                "projector %s lost the lease after seq %d: standing by", self.instance,
                self.projector.applied, extra={"instance": self.instance},
            )  # fmt: skip

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Read-your-writes: True once event `seq` is in the read model (False on timeout),
        whoever applies it: this projector while active, else the one holding the lease, whose
        progress shows in the checkpoint (polled). In real time, as `Projector.wait_for`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if self.state == "active":
                if await self.projector.wait_for(seq, max(0.0, min(left, 0.5))):
                    return True
            elif await self._observe() >= seq:
                return True
            if loop.time() >= deadline:
                return False
            if self.state != "active":
                await asyncio.sleep(min(self._poll, max(0.0, left)))  # polling the checkpoint

    async def _observe(self) -> int:
        if self._checkpoint is not None:
            self.observed = max(self.observed, await self._checkpoint())
        return self.applied

    async def measure(self) -> int:
        """The lag now (for the heartbeat): the active projector's, or what the read model's
        checkpoint says while standing by."""
        if self.state == "active":
            return await self.projector.measure()
        self.head = max(self.head, await self.projector.store.head_seq())
        return max(0, self.head - await self._observe())

    def details(self) -> dict[str, Any]:
        """Heartbeat details: `state` is `active` or `standby`; `leaseHolder` who applies."""
        lease = self.candidate.current
        common = {"state": self.state, "leaseHolder": lease.holder if lease else None,
                  "terms": self.terms}  # fmt: skip
        if self.state == "active":
            return {**self.projector.details(), **common}
        applied = self.applied
        return {**common, "applied": applied, "head": self.head,
                "lag": max(0, self.head - applied)}  # fmt: skip

    async def close(self) -> None:
        await self.projector.close()
