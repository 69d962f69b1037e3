"""Last-seen times of every daemon, for `GET /api/system/health` in a Brain without a monitor.

The monitor records up/down as events; this only remembers, in memory, when each instance last
sent a heartbeat and what it said, so the API can show "last seen" next to the read model.
"""

from __future__ import annotations

from typing import Any

from adapters.clock import SYSTEM_CLOCK
from domain.wire import WireError
from domain.wire_system import decode_health
from services.heartbeat import HEALTH_SUBJECT
from services.ports.bus import Bus, Message, Subscription
from services.ports.clock import Clock


class LastSeen:
    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.seen: dict[str, dict[str, Any]] = {}
        self.malformed = 0
        self._clock = clock
        self._sub: Subscription | None = None

    async def start(self, bus: Bus) -> None:
        self._sub = await bus.subscribe(HEALTH_SUBJECT, self._on_beat)

    async def _on_beat(self, msg: Message) -> None:
        try:
            beat = decode_health(msg.data)
        except WireError:
            self.malformed += 1
            return
        self.seen[beat.instance] = {
            "service": beat.service,
            "status": "down" if beat.status == "stopping" else "up",
            "lastSeen": self._clock.wall().isoformat(),
            "version": beat.version,
            "details": beat.details,
        }

    async def snapshot(self) -> dict[str, dict[str, Any]]:
        return dict(self.seen)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
