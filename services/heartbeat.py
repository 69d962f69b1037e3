"""Health heartbeats on `baker.system.health` (every daemon sends them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS

HEALTH_SUBJECT = "baker.system.health"
VERSION = "0.1.0"
log = logging.getLogger("baker.health")


def health_message(
    service: str, instance: str, started: float, details: dict[str, Any], status: str = "up"
) -> bytes:
    return json.dumps(
        {
            "service": service,
            "instance": instance,
            "status": status,
            "version": VERSION,
            "uptime": round(time.monotonic() - started, 3),
            "timestamp": datetime.now(UTC).isoformat(),
            "details": details,
        }
    ).encode()


async def beat(
    nc: NATS,
    service: str,
    instance: str,
    details: Callable[[], dict[str, Any]],
    stop: asyncio.Event,
    every: float = 30.0,
    refresh: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """Publish a heartbeat now and then every `every` seconds until `stop`; a last one says
    the service is stopping. `refresh` (if any) is awaited before every beat but the first
    (the caller starts fresh), at most 2 s, so `details` can carry a value measured then."""
    started = time.monotonic()
    while not stop.is_set():
        try:
            await nc.publish(HEALTH_SUBJECT, health_message(service, instance, started, details()))
        except Exception as exc:  # a missed beat must never stop the daemon
            log.warning("heartbeat not sent: %s", exc, extra={"service": service})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        await _refreshed(refresh, service)
    with contextlib.suppress(Exception):
        msg = health_message(service, instance, started, details(), status="stopping")
        await nc.publish(HEALTH_SUBJECT, msg)
        await nc.flush(timeout=1)


async def _refreshed(refresh: Callable[[], Awaitable[Any]] | None, service: str) -> None:
    if refresh is None:
        return
    try:
        await asyncio.wait_for(refresh(), 2.0)
    except Exception as exc:  # a stale detail is better than a missed beat
        log.warning("heartbeat details not refreshed: %s", exc, extra={"service": service})
