"""Dialling NATS servers: the first connection within its deadline, then reconnecting for ever.

The first connection tries the servers in turn until `first_connect_within` has passed, then
raises `NatsUnavailable` naming the servers and the most telling error (the server's refusal
where there was one); when every server has refused our credentials it says so at once
instead of trying until the deadline. A server older than `MIN_VERSION` is refused
(`ServerTooOld`). Afterwards `again` tries for as long as it takes, each server with its own
back-off.

Every process connects through here (`Client.connect(Options(...))`; `Settings.nats` builds
the options from the environment): the settings, the version refusal, the first connection's
error wording, and the URL redaction for logs are in this one place.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.nats import protocol
from adapters.nats.errors import AuthorizationError, NatsError, NatsUnavailable, ServerTooOld
from adapters.nats.message import Msg
from adapters.nats.server import NatsServerTooOld, parse_version, require_version
from adapters.nats.servers import Credentials, Server, ServerPool, connect_options, redact_url
from adapters.nats.wire import Owner, Wire, dial

# What a process needs to connect, and what connecting may raise, from this one module.
__all__ = ["Connector", "NatsUnavailable", "Options", "ServerTooOld", "redact_url"]
log = logging.getLogger("baker.nats")
Connected = tuple[Wire, Server, dict[str, Any]]


@dataclass(frozen=True)
class Options:
    url: str = "nats://127.0.0.1:4222"  # comma-separated for a cluster
    name: str = "baker"
    creds: str | None = None  # a creds file or an nkey seed file (needs `nkeys`)
    connect_timeout: float = 5.0
    first_connect_within: float = 15.0
    reconnect_wait: float = 0.25  # doubling per failed attempt on the same server ...
    reconnect_wait_max: float = 2.0  # ... up to this
    ping_interval: float = 30.0
    max_outstanding_pings: int = 2
    reconnect_buffer: int = 8 << 20
    high_water: int = 1 << 20  # socket buffer beyond which `congested` is true
    check_version: bool = True  # off only for a bench that compares old servers
    echo: bool = True
    on_disconnect: Callable[[], None] | None = None
    on_reconnect: Callable[[], None] | None = None
    on_error: Callable[[NatsError], None] | None = None


class Connector:
    def __init__(self, options: Options, make: protocol.MsgFactory[Msg], owner: Owner) -> None:
        self.options = options
        self.pool = ServerPool(
            options.url, wait=options.reconnect_wait, wait_max=options.reconnect_wait_max
        )
        self._creds = Credentials.load(options.creds) if options.creds else None
        self._make = make
        self._owner = owner

    async def first(self) -> Connected:
        loop, opts = asyncio.get_running_loop(), self.options
        deadline = loop.time() + opts.first_connect_within
        errors: list[str] = []
        refused: set[int] = set()
        while True:
            server = self.pool.next()
            start = max(server.retry_at, loop.time())
            if start >= deadline:
                raise self._unavailable(errors)
            await asyncio.sleep(start - loop.time())
            try:
                return await self._try(server, min(opts.connect_timeout, deadline - start))
            except ServerTooOld:
                raise
            except (OSError, TimeoutError, NatsError) as exc:
                errors.append(f"{server.url}: {exc or type(exc).__name__}")
                self.pool.failed(server, loop.time())
                if isinstance(exc, AuthorizationError):
                    refused.add(id(server))
                    if len(refused) == len(self.pool.servers):
                        raise self._unavailable(errors) from None  # every server said no

    async def again(self) -> Connected:
        """A new connection, however long it takes (the caller cancels to stop)."""
        loop = asyncio.get_running_loop()
        while True:
            server = self.pool.next()
            await asyncio.sleep(max(0.0, server.retry_at - loop.time()))
            try:
                return await self._try(server, self.options.connect_timeout)
            except (OSError, TimeoutError, NatsError) as exc:
                self.pool.failed(server, loop.time())
                log.debug("reconnecting to %s failed: %s", server.url, exc)

    def _unavailable(self, errors: list[str]) -> NatsUnavailable:
        where = ", ".join(s.url for s in self.pool.servers)
        within = self.options.first_connect_within
        return NatsUnavailable(f"cannot connect to NATS at {where} within {within:.0f}s "
                               f"({_telling(errors)})")  # fmt: skip

    async def _try(self, server: Server, timeout: float) -> Connected:
        async with asyncio.timeout(timeout):
            hello = functools.partial(self._hello, server)
            wire, info = await dial(server.host, server.port, self._make, self._owner, hello)
        self.pool.connected(server)
        self.pool.announce(list(info.get("connect_urls") or []), server)
        return wire, server, info

    def _hello(self, server: Server, info: dict[str, Any]) -> bytes:
        """Judge a server by its INFO; the CONNECT to send it."""
        if self.options.check_version:
            try:
                found = parse_version(str(info.get("version", "")))
                require_version(found, f"the NATS server at {server.url}")
            except NatsServerTooOld as exc:
                raise ServerTooOld(str(exc)) from None
        if info.get("tls_required"):
            raise NatsError(f"{server.url} requires TLS, which this client does not speak")
        if not info.get("headers"):
            raise NatsError(f"{server.url} does not support headers")
        opts = self.options
        return protocol.encode_connect(
            connect_options(info, server, self._creds, opts.name, opts.echo)
        )


_REFUSALS = ("authorization", "authentication", "permission", "user credentials")


def _telling(errors: list[str]) -> str:
    """The error that says most: the server's refusal if there was one (the socket reset
    that follows it can arrive last), else the last error."""
    for error in reversed(errors):
        if any(word in error.lower() for word in _REFUSALS):
            return error
    return errors[-1] if errors else "no answer"
