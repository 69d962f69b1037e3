"""Service health: heartbeats on `baker.system.health` become `ServiceUp` / `ServiceDown`.

Every heartbeat refreshes its instance's last-seen time and details in memory; an event is
recorded only when an instance flips between up and down (DESIGN §5). An instance is down after
the whole timeout without a heartbeat, or at once when its heartbeat says it is stopping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapters.clock import SYSTEM_CLOCK
from domain import lifecycle
from domain.commands import ReportServiceHealth
from domain.events import Envelope, ServiceUp
from domain.wire_system import WireError, decode_health
from services.executor import CommandExecutor, Outcome
from services.ports.bus import Message
from services.ports.clock import Clock

log = logging.getLogger("baker.monitor.health")


@dataclass
class HealthStats:
    heartbeats: int = 0
    malformed: int = 0
    errors: int = 0  # the event store failed while recording a flip
    ups: int = 0
    downs: int = 0


@dataclass
class Instance:
    service: str
    status: str  # up | down ("new" until the first flip is recorded)
    seen: float  # the clock's `now()` at the last heartbeat (or at the monitor's start)
    seen_at: datetime | None  # wall clock of the last heartbeat, or of the last event
    version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class HealthTracker:
    def __init__(
        self, store: CommandExecutor, *, down_after: float, missed: int, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._store = store
        self._clock = clock
        self.down_after = down_after
        self.missed = missed
        self.known: dict[str, Instance] = {}
        self.stats = HealthStats()
        self._locks: dict[str, asyncio.Lock] = {}

    def restore(self, envelopes: Iterable[Envelope]) -> None:
        """Fold the service events of the log; instances that were up get a fresh grace period
        of the whole timeout (the monitor was not listening meanwhile)."""
        now = self._clock.now()
        states: dict[str, Any] = {}
        for env in envelopes:
            state = states.get(env.aggregate_id) or lifecycle.initial_state("service")
            try:
                states[env.aggregate_id] = lifecycle.evolve("service", state, env.data)
            except TypeError as exc:  # a foreign event on a service subject: skip it
                log.error("skipped %s on service %s: %s", env.type, env.aggregate_id, exc)
                continue
            known = self.known.setdefault(env.aggregate_id, Instance("", "new", now, None))
            if isinstance(env.data, ServiceUp):
                known.service, known.version = env.data.service, env.data.version
            known.status = states[env.aggregate_id].status
            known.seen_at = env.occurred_at  # the best "last seen" the log can tell

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Live health per instance: `{service, status, lastSeen (ISO), version, details}`."""
        return {
            instance: {
                "service": i.service,
                "status": "up" if i.status == "up" else "down",
                "lastSeen": i.seen_at.isoformat() if i.seen_at else None,
                "version": i.version,
                "details": dict(i.details),
            }
            for instance, i in self.known.items()
        }

    def up(self) -> int:
        return sum(1 for i in self.known.values() if i.status == "up")

    async def on_health(self, msg: Message) -> None:
        try:
            beat = decode_health(msg.data)
        except WireError as exc:
            self.stats.malformed += 1
            log.warning(
                "malformed heartbeat on %s: %s", msg.subject, exc, extra={"subject": msg.subject}
            )
            return
        self.stats.heartbeats += 1
        async with self._lock(beat.instance):
            known = self.known.get(beat.instance)
            if known is None:
                known = self.known[beat.instance] = Instance(beat.service, "new", 0.0, None)
            known.service, known.version, known.details = beat.service, beat.version, beat.details
            known.seen, known.seen_at = self._clock.now(), self._clock.wall()
            up = beat.status == "up"
            if known.status == ("up" if up else "down"):
                return  # no flip: nothing to record
            reason = "" if up else f"{beat.service} is stopping"
            await self._report(beat.instance, known, up, reason)

    async def sweep(self) -> None:
        """Record `ServiceDown` for every up instance silent for longer than the timeout."""
        for instance, known in list(self.known.items()):
            if known.status != "up" or not self._silent(known):
                continue
            async with self._lock(instance):
                if known.status != "up" or not self._silent(known):
                    continue  # a heartbeat came while we waited for the lock
                reason = f"no heartbeat for {self.down_after:g}s ({self.missed} missed)"
                await self._report(instance, known, False, reason)

    async def _report(self, instance: str, known: Instance, up: bool, reason: str) -> None:
        cmd = ReportServiceHealth(
            up=up,
            service=known.service,
            instance=instance,
            version=known.version,
            reason=reason,
            last_seen=known.seen_at,
        )
        try:
            outcome: Outcome = await self._store.execute("service", instance, cmd)
        except Exception:  # the store is down: log, count; the next beat or sweep retries
            self.stats.errors += 1
            log.exception("could not record %s for %s", "up" if up else "down", instance)
            return
        if outcome.appended and outcome.rejected is None:
            self.stats.ups += up
            self.stats.downs += not up
            log.info("%s %s is %s%s", known.service, instance, "up" if up else "down",
                     "" if up else f": {reason}")  # fmt: skip
        # A first heartbeat that says "stopping" is refused on a new instance (nothing to put
        # down); keep it as down here so it is not tried again on every beat.
        known.status = "down" if outcome.state.status == "new" else outcome.state.status

    def _lock(self, instance: str) -> asyncio.Lock:
        return self._locks.setdefault(instance, asyncio.Lock())

    def _silent(self, known: Instance) -> bool:
        return self._clock.now() - known.seen > self.down_after
