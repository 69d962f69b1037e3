"""Connecting to NATS: reconnect forever, auth from the URL or a creds file, logged quietly."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NATS

from adapters.nats import speedups
from adapters.nats.server import NatsServerTooOld, parse_version, require_version

log = logging.getLogger("baker.nats")
DEFAULT_URL = "nats://127.0.0.1:4222"


@dataclass(frozen=True)
class NatsSettings:
    url: str = DEFAULT_URL
    creds: str | None = None
    name: str = "baker"
    connect_timeout: float = 5.0
    reconnect_wait: float = 0.5
    first_connect_within: float = 15.0
    check_version: bool = True  # off only for a bench that compares old servers


class NatsUnavailable(ConnectionError):
    """The first connection could not be made in time; the message says why."""


class ServerTooOld(NatsUnavailable):
    """The server answered, but it is older than the version we need (DESIGN §9)."""


def redact_url(url: str) -> str:
    """The URL with any user:password@ or token@ replaced, safe for logs."""
    return re.sub(r"//[^@/]*@", "//***@", url)


async def connect(settings: NatsSettings) -> NATS:
    """Connect (retrying for up to `first_connect_within` seconds, then `NatsUnavailable`
    with the server's refusal or the last error), and once connected, reconnect for ever."""
    speedups.install()
    where = redact_url(settings.url)
    holder: list[NATS] = []

    def closing() -> bool:
        return bool(holder) and (holder[0].is_closed or holder[0].is_draining)

    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc) or type(exc).__name__)
        if holder and not closing():
            log.warning("nats error on %s: %s", where, exc)

    async def on_disconnect() -> None:
        if not closing():
            log.warning("disconnected from %s; reconnecting", where)

    async def on_reconnect() -> None:
        log.info("reconnected to %s", where)

    attempt = nats.connect(
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
    try:
        nc = await asyncio.wait_for(attempt, settings.first_connect_within)
    except TimeoutError:
        last = _telling(errors)
        raise NatsUnavailable(
            f"cannot connect to NATS at {where} within {settings.first_connect_within:.0f}s "
            f"({last})"
        ) from None
    holder.append(nc)
    if settings.check_version:
        found = parse_version(str(nc.connected_server_version))
        try:
            require_version(found, f"the NATS server at {where}")
        except NatsServerTooOld as exc:
            await nc.close()
            raise ServerTooOld(str(exc)) from None
    return nc


_REFUSALS = ("authorization", "authentication", "permission", "user credentials")


def _telling(errors: list[str]) -> str:
    """The error that says most: the server's refusal if there was one (the socket reset
    that follows it can arrive last), else the last error."""
    for error in reversed(errors):
        if any(word in error.lower() for word in _REFUSALS):
            return error
    return errors[-1] if errors else "no answer"


Connection = NATS
"""The client the adapters are built on (what `connect` returns)."""


def connection_check(nc: NATS) -> dict[str, str]:
    """The connection's state for a health page: healthy with the server it is on, or not."""
    connected = nc.is_connected
    detail = {"status": "healthy" if connected else "unhealthy"}
    if connected and nc.connected_url is not None:
        detail["server"] = f"{nc.connected_url.hostname}:{nc.connected_url.port}"
    return detail
