"""Health heartbeats on `baker.system.health` (every daemon sends them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.clock import SYSTEM_CLOCK
from services.ports.bus import Bus
from services.ports.clock import Clock, pause

HEALTH_SUBJECT = "baker.system.health"
VERSION = "0.1.0"
log = logging.getLogger("baker.health")


def health_message(
    service: str,
    instance: str,
    started: float,
    details: dict[str, Any],
    status: str = "up",
    clock: Clock = SYSTEM_CLOCK,
) -> bytes:
    """A heartbeat; `started` is the sender's start on `clock.now()` (its uptime's origin)."""
    return json.dumps(
        {
            "service": service,
            "instance": instance,
            "status": status,
            "version": VERSION,
            "uptime": round(clock.now() - started, 3),
            "timestamp": clock.wall().isoformat(),
            "details": details,
        }
    ).encode()


async def beat(
    bus: Bus,
    service: str,
    instance: str,
    details: Callable[[], dict[str, Any]],
    stop: asyncio.Event,
    every: float = 30.0,
    refresh: Callable[[], Awaitable[Any]] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Publish a heartbeat now and then every `every` seconds of `clock` until `stop`; a last
    one says the service is stopping. `refresh` (if any) is awaited before every beat but the
    first (the caller starts fresh), at most 2 s, so `details` can carry a value measured then."""
    started = clock.now()
    while not stop.is_set():
        try:
            msg = health_message(service, instance, started, details(), clock=clock)
            await bus.publish(HEALTH_SUBJECT, msg)
        except Exception as exc:  # a missed beat must never stop the daemon
            log.warning("heartbeat not sent: %s", exc, extra={"service": service})
        await pause(clock, every, stop)
        await _refreshed(refresh, service)
    with contextlib.suppress(Exception):
        msg = health_message(service, instance, started, details(), "stopping", clock)
        await bus.publish(HEALTH_SUBJECT, msg)
        await bus.flush(timeout=1)


async def _refreshed(refresh: Callable[[], Awaitable[Any]] | None, service: str) -> None:
    if refresh is None:
        return
    try:
        await asyncio.wait_for(refresh(), 2.0)
    except Exception as exc:  # a stale detail is better than a missed beat
        log.warning("heartbeat details not refreshed: %s", exc, extra={"service": service})
