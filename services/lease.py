"""A lease candidate (DESIGN §13): take a renewable lease when it is free, renew it while
holding it, and know — on its own clock — the moment it may no longer act as the holder.

The value it writes expires `ttl` seconds after it was sent; it is renewed every `renew_every`
seconds by compare-and-set on the revision it last stored. The candidate counts itself the
holder only until `ttl - margin` after the send of its last successful write, so it stops
before any other candidate can see the value expire (as long as the hosts' clocks agree to
within `margin`); a renewal that fails, is refused, or has not finished by then ends the hold
at once. Another candidate takes over a value only once it has expired on its own wall clock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from adapters.clock import SYSTEM_CLOCK
from domain.lease import Lease, LeaseTaken, Step, for_holder, next_step
from services.ports.clock import Clock, pause, within
from services.ports.lease import LeaseRecords

log = logging.getLogger("baker.lease")


@dataclass(frozen=True)
class LeaseSettings:
    ttl: float = 6.0  # seconds a written value holds
    renew_every: float = 2.0
    check_every: float = 1.0  # how often a standby reads the lease
    margin: float = 1.0  # the holder stops this long before the expiry it wrote


class LeaseCandidate:
    def __init__(
        self,
        leases: LeaseRecords,
        key: str,
        holder: str,
        *,
        host: str = "",
        settings: LeaseSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.leases = leases
        self.key = key
        self.holder = holder
        self.host = host
        self.settings = settings or LeaseSettings()
        self._clock = clock
        self.current: Lease | None = None  # the value last read or stored
        self._valid_until: float | None = None  # clock.now() until which this one holds

    @property
    def held(self) -> bool:
        """This candidate holds the lease now (its last write is recent enough)."""
        return self._valid_until is not None and self._clock.now() < self._valid_until

    async def try_acquire(self) -> bool:
        """Read the lease and act on it once (create it, renew one's own, take over an
        expired one); True if this candidate holds it afterwards."""
        try:
            current = await self.leases.read(self.key)
        except Exception as exc:  # the store away: a standby just tries again later
            log.warning("reading lease %s failed: %r", self.key, exc)
            self._lose()
            return False
        self.current = current
        step = next_step(current, self.holder, self._clock.wall())
        if step == "wait":
            self._lose()
            return False
        return await self._write(step, current)

    async def renew(self) -> bool:
        """Renew the lease held; False, and no longer held, when the renewal is refused,
        fails, or has not finished by the time the hold would lapse."""
        current, until = self.current, self._valid_until
        if not self.held or current is None or until is None:
            self._lose()
            return False
        work = asyncio.ensure_future(self._write("renew", current))
        if not await within(self._clock, until - self._clock.now(), work):
            work.cancel()
            log.warning("lease %s: renewal did not finish in time; giving it up", self.key)
            self._lose()
            return False
        return work.result()

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew every `renew_every` seconds; returns when `stop` is set or a renewal fails
        (the caller stops acting as the holder then)."""
        while self.held:
            if await pause(self._clock, self.settings.renew_every, stop):
                return
            if not await self.renew():
                return

    async def release(self) -> None:
        """Give the lease up: store it expired now (so a standby need not wait out the TTL)."""
        current = self.current
        if not self.held or current is None:
            self._lose()
            return
        self._lose()
        value = Lease(self.holder, self._clock.wall(), self.host)
        try:
            self.current = await self.leases.update(self.key, value, current.revision)
        except Exception as exc:  # it expires on its own
            log.info("lease %s not released (%r): it expires by itself", self.key, exc)

    async def _write(self, step: Step, current: Lease | None) -> bool:
        sent = self._clock.now()
        value = for_holder(self.holder, self.host, self._clock.wall(), self.settings.ttl)
        try:
            if step == "create" or current is None:
                stored = await self.leases.create(self.key, value)
            else:
                stored = await self.leases.update(self.key, value, current.revision)
        except LeaseTaken:
            self._lose()
            return False
        except Exception as exc:
            log.warning("lease %s: %s failed: %r", self.key, step, exc)
            self._lose()
            return False
        self.current = stored
        self._valid_until = sent + self.settings.ttl - self.settings.margin
        return True

    def _lose(self) -> None:
        self._valid_until = None
