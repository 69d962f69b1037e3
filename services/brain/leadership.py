"""Leadership and fencing: only the Brain holding the current generation may change jobs.

The generation lives in the `baker-leader` KV key and changes only by compare-and-set
(`LeaderRecord.take`: of two Brains racing from the same record, one wins and the other gets
`LeadershipTaken`). Every append of this Brain's work (jobs, tasks) passes `check` first, which
raises `Fenced`, before anything is published, unless both hold:

* the newest record this Brain knows names it with the generation it took. The record is
  watched (its last value, then every *stored* change in order), so a refused compare-and-set
  is never mistaken for a change and a newer generation is learnt as soon as the server
  delivers it;
* it confirmed that recently: the record is re-read every `confirm_every` seconds, and a Brain
  whose last confirming read was sent more than `max_unconfirmed` seconds ago (cut off from the
  server, or its reads stalled) refuses on its own, without waiting to hear that it lost.

JetStream 2.9 cannot make a publish to `BAKER_EVENTS` conditional on a key of another stream,
so this is a lease, not an atomic check: after a newer generation is taken, an old Brain can
append for at most one watch delivery (or `max_unconfirmed`, when it hears nothing at all). The
handoff closes even that window in the normal case: the old Brain has stopped appending before
it sends `clear`. Only jobs and tasks are fenced: a Brain always records its own role changes
and handoffs, and the monitor (which may share the Brain's store in `baker up`) records
service and extension changes whoever leads (its commands are idempotent decisions).

`Leadership` is the command executor's fence (`services.executor.Fence`): callers of
`append`/`execute` on jobs and tasks must treat `Fenced` as "this Brain does not lead": answer
503, or leave the message unacknowledged for the leader; never record a failure of the job
because of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from adapters.clock import SYSTEM_CLOCK
from domain.handoff import Leader, LeadershipTaken
from services.ports.clock import Clock
from services.ports.leader import LeaderRecords
from services.ports.topics import Subscription

log = logging.getLogger("baker.brain.leadership")
FENCED = frozenset({"job", "task"})


class Fenced(Exception):
    """This Brain is not (or can no longer confirm it is) the leader: it may not change jobs
    or tasks. Raised by the command executor before anything is published."""


class Leadership:
    def __init__(
        self,
        record: LeaderRecords,
        instance: str,
        version: str,
        *,
        confirm_every: float = 1.0,
        max_unconfirmed: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.record = record
        self._clock = clock
        self.instance = instance
        self.version = version
        self.confirm_every = confirm_every
        self.max_unconfirmed = max_unconfirmed
        self.mine: int | None = None  # the generation this Brain took, if any
        self.current: Leader | None = None  # the newest record seen (by stream sequence)
        self.confirmed_at: float | None = None  # clock time the last read saying so was sent
        self._on_lost: Callable[[Leader], Awaitable[None]] | None = None
        self._sub: Subscription | None = None
        self._confirmer: asyncio.Task[None] | None = None
        self._unconfirmed_logged = False

    @property
    def leading(self) -> bool:
        """The newest record known names this Brain with the generation it took."""
        current = self.current
        return (
            self.mine is not None
            and current is not None
            and current.instance == self.instance
            and current.generation == self.mine
        )

    def _is_me(self, leader: Leader) -> bool:
        return leader.instance == self.instance

    def unconfirmed_for(self) -> float:
        """Seconds since the last read that confirmed this Brain leads (inf: never)."""
        if self.confirmed_at is None:
            return float("inf")
        return self._clock.now() - self.confirmed_at

    def check(self, aggregate: str) -> int | None:
        """The executor's fence: raise `Fenced` unless this Brain leads, confirmed lately (for
        jobs and tasks); the generation to stamp on the events (the one it took, if any)."""
        if aggregate not in FENCED:
            return self.mine
        if not self.leading:
            current = self.current
            holder = (
                f"{current.instance} (generation {current.generation})" if current else "nobody"
            )
            raise Fenced(
                f"{self.instance} may not append {aggregate} events: the leader is {holder}"
            )
        age = self.unconfirmed_for()
        if age > self.max_unconfirmed:
            raise Fenced(
                f"{self.instance} may not append {aggregate} events: it could not confirm "
                f"generation {self.mine} for {age:.1f}s (limit {self.max_unconfirmed:g}s)"
            )
        return self.mine

    def _learn(self, leader: Leader | None) -> None:
        """Keep the newest record: a slow read never undoes a newer delivery of the watch."""
        if leader is None:
            return
        if self.current is None or leader.revision >= self.current.revision:
            self.current = leader

    async def refresh(self) -> Leader | None:
        """Read the record; return the newest one known. A read that says this Brain still
        leads confirms it (as of the moment the read was sent)."""
        asked = self._clock.now()
        leader = await self.record.read()
        self._learn(leader)
        if leader is not None and self.current is leader and self.leading:
            self.confirmed_at = max(self.confirmed_at or asked, asked)
            if self._unconfirmed_logged:
                log.info("generation %d confirmed again", self.mine)
                self._unconfirmed_logged = False
        return self.current

    async def take(self, attempts: int = 5) -> Leader:
        """Take the next generation (compare-and-set on the current record)."""
        for _ in range(attempts):
            current = await self.refresh()
            asked = self._clock.now()
            try:
                taken = await self.record.take(self.instance, self.version, current)
            except LeadershipTaken:
                continue  # someone moved it in between: read again and go on top of it
            self.mine = taken.generation
            self._learn(taken)
            self.confirmed_at = asked
            log.info("leading with generation %d", taken.generation)
            return taken
        raise LeadershipTaken(f"{self.instance}: the leader record kept changing")

    async def watch(self, on_lost: Callable[[Leader], Awaitable[None]]) -> None:
        """Follow the record (and confirm it periodically); `on_lost` is called when another
        Brain takes a newer generation than this one's."""
        self._on_lost = on_lost
        self._sub = await self.record.watch(self._delivered)
        self._confirmer = asyncio.create_task(self._confirm(), name="baker-leader-confirm")

    async def _delivered(self, leader: Leader) -> None:
        self._learn(leader)
        # (A record naming this Brain is its own take, delivered before the take returned.)
        if self.mine is not None and leader.generation > self.mine and not self._is_me(leader):
            log.warning("fenced: %s took generation %d", leader.instance, leader.generation)
            if self._on_lost is not None:
                await self._on_lost(leader)

    async def _confirm(self) -> None:
        while True:
            if self.mine is not None and self.leading:
                try:
                    await asyncio.wait_for(self.refresh(), self.max_unconfirmed)
                except Exception as exc:  # a missed confirmation only ages the lease
                    if not self._unconfirmed_logged:
                        log.warning("could not confirm generation %s: %r", self.mine, exc)
                        self._unconfirmed_logged = True
            await self._clock.sleep(self.confirm_every)  # the confirmation period, not a wait

    async def close(self) -> None:
        if self._confirmer is not None:
            self._confirmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._confirmer
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        await self.record.close()
