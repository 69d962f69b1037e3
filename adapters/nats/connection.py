"""Connecting to NATS: reconnect forever, auth from the URL or a creds file, logged quietly."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NATS

log = logging.getLogger("baker.nats")
DEFAULT_URL = "nats://127.0.0.1:4222"


@dataclass(frozen=True)
class NatsSettings:
    url: str = DEFAULT_URL
    creds: str | None = None
    name: str = "baker"
    connect_timeout: float = 5.0
    reconnect_wait: float = 0.5


def redact_url(url: str) -> str:
    """The URL with any user:password@ or token@ replaced, safe for logs."""
    return re.sub(r"//[^@/]*@", "//***@", url)


async def connect(settings: NatsSettings) -> NATS:
    """Connect, retrying until `connect_timeout`, then reconnecting for ever after a drop."""
    where = redact_url(settings.url)
    holder: list[NATS] = []

    def closing() -> bool:
        return bool(holder) and (holder[0].is_closed or holder[0].is_draining)

    async def on_error(exc: Exception) -> None:
        if not closing():
            log.warning("nats error on %s: %s", where, exc)

    async def on_disconnect() -> None:
        if not closing():
            log.warning("disconnected from %s; reconnecting", where)

    async def on_reconnect() -> None:
        log.info("reconnected to %s", where)

    nc = await nats.connect(
        servers=[settings.url],
        name=settings.name,
        user_credentials=settings.creds,
        connect_timeout=settings.connect_timeout,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=settings.reconnect_wait,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    holder.append(nc)
    return nc
