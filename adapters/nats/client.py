"""Our NATS client: one connection, synchronous publishing, callbacks for subscriptions.

The hot paths of the system are JetStream publishes awaiting a PubAck, pulled messages and
their acks, and report publishes. So:
- `publish` only encodes and hands the bytes to the outbox (`outbox.py`), which writes a
  loop turn's worth in one `write`: no await, task or future per message. When the socket
  is behind, `congested` is true and `await writable()` waits for it to drain.
- A subscription's callback is called from `data_received`, as the bytes are parsed: no task
  or queue per message. A callback that raises is logged and counted, never fatal.
- `request` shares one wildcard inbox subscription and one deadline sweep (`inbox.py`).
- It reconnects for ever (each server with its own back-off), subscribes everything again,
  and writes what was published while it was down (up to `reconnect_buffer` bytes; past that
  a publish raises `OutboundBufferFull`). Requests in flight at a disconnect fail at once with
  `ConnectionLost`, so their callers can send them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import re
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from adapters.nats import protocol
from adapters.nats.connector import Connector, Options
from adapters.nats.errors import (
    AuthorizationError,
    ConnectionClosed,
    ConnectionLost,
    NatsError,
    PermissionDenied,
    RequestTimeout,
)
from adapters.nats.inbox import RequestMux
from adapters.nats.message import Msg
from adapters.nats.outbox import Outbox
from adapters.nats.servers import Server
from adapters.nats.wire import Ops, Wire

__all__ = ["Client", "Options", "Subscription"]
log = logging.getLogger("baker.nats")
_whitespace = re.compile(r"\s").search
CONNECTING, CONNECTED, RECONNECTING, DRAINING, CLOSED = range(5)
Callback = Callable[[Msg], None]


class Subscription:
    __slots__ = ("_client", "callback", "queue", "sid", "subject")

    def __init__(self, client: Client, sid: int, subject: str, queue: str, cb: Callback) -> None:
        self._client = client
        self.sid = sid
        self.subject = subject
        self.queue = queue
        self.callback = cb

    def unsubscribe(self) -> None:
        self._client._unsubscribe(self)


class Client:
    def __init__(self, options: Options) -> None:
        self.options = options
        self._loop = asyncio.get_running_loop()
        self._connector = Connector(options, functools.partial(Msg, self), self)
        self._pool = self._connector.pool
        self._status = CONNECTING
        self._wire: Wire | None = None
        self.server: Server | None = None
        self.server_info: dict[str, Any] = {}
        self.max_payload = 1 << 20
        self._outbox = Outbox(options.reconnect_buffer, options.high_water)
        self._send = self._outbox.send  # bound once: it runs for every publish
        self._subs: dict[int, Subscription] = {}
        self._sids = itertools.count(1)
        self._inboxes = itertools.count(1)
        self._inbox_base = f"_INBOX.{secrets.token_hex(10)}"
        self._pongs: deque[asyncio.Future[None] | None] = deque()
        self._pings_out = 0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self._mux = RequestMux(self)
        self.reconnects = 0
        self.errors = 0  # server -ERRs and failed callbacks

    @classmethod
    async def connect(cls, options: Options | str) -> Client:
        """Connect to the first server that answers within `first_connect_within` seconds,
        else `NatsUnavailable` naming the servers and the most telling error."""
        client = cls(Options(url=options) if isinstance(options, str) else options)
        wire, server, info = await client._connector.first()
        client._attach(wire, server, info)
        return client

    # --- publishing -------------------------------------------------------------------------

    def publish(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue a message; it is written at the loop's next turn."""
        if not subject or _whitespace(subject) or (reply and _whitespace(reply)):
            raise ValueError(f"bad NATS subject {subject!r} or reply {reply!r}")
        if headers:
            block = protocol.encode_headers(headers)
            self._check_size(subject, len(block) + len(payload))
            self._send(protocol.encode_hpub(subject, payload, block, reply))
        else:
            self._check_size(subject, len(payload))
            self._send(protocol.encode_pub(subject, payload, reply))

    def _check_size(self, subject: str, size: int) -> None:
        """The server drops the connection for a message over its maximum (headers count)."""
        if size > self.max_payload:
            raise ValueError(f"{subject}: {size} bytes is over the server's maximum")

    def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 2.0,
    ) -> asyncio.Future[Msg]:
        """Publish with a reply subject; the future gets the answer, or `RequestTimeout`,
        `NoResponders`, `ConnectionLost` (all in `errors.TRANSIENT`) or `ConnectionClosed`."""
        return self._mux.request(subject, payload, headers, timeout)

    @property
    def congested(self) -> bool:
        """Whether a publisher should `await writable()` before publishing more."""
        return self._outbox.congested

    async def writable(self) -> None:
        await self._outbox.writable()

    # --- subscribing --------------------------------------------------------------------------

    def subscribe(self, subject: str, callback: Callback, *, queue: str = "") -> Subscription:
        """Call `callback(msg)` for every message on `subject` (a plain function: it runs
        while the read is parsed, so it must not block; start a task for slow work)."""
        protocol.check_subject(subject)
        if queue:
            protocol.check_subject(queue, "queue group")
        if self._status == CLOSED:
            raise ConnectionClosed("the NATS client is closed")
        sub = Subscription(self, next(self._sids), subject, queue, callback)
        self._subs[sub.sid] = sub
        if self._status == CONNECTED:  # otherwise every subscription is sent on connecting
            self._send(protocol.encode_sub(subject, sub.sid, queue))
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if self._subs.pop(sub.sid, None) is not None and self._status == CONNECTED:
            self._send(protocol.encode_unsub(sub.sid))

    def new_inbox(self) -> str:
        return f"{self._inbox_base}.{next(self._inboxes)}"

    # --- what the server sends ------------------------------------------------------------------

    def _received(self, wire: Wire, ops: Ops) -> None:
        subs = self._subs
        for op in ops:
            if type(op) is Msg:
                sub = subs.get(op.sid)
                if sub is not None:
                    try:
                        sub.callback(op)
                    except Exception:
                        self.errors += 1
                        log.exception("subscription callback on %s failed", op.subject)
            elif op is protocol.PING_OP:
                self._send(protocol.PONG)
            elif op is protocol.PONG_OP:
                self._pong()
            elif isinstance(op, protocol.Info):
                self._async_info(op.options)
            elif isinstance(op, protocol.Err):
                self._server_error(op.text)

    def _pong(self) -> None:
        self._pings_out = 0
        if self._pongs and (waiter := self._pongs.popleft()) is not None and not waiter.done():
            waiter.set_result(None)

    def _async_info(self, info: dict[str, Any]) -> None:
        self.server_info.update(info)
        if self.server is not None:
            self._pool.announce(list(info.get("connect_urls") or []), self.server)

    def _server_error(self, text: str) -> None:
        """A permissions violation refuses one publish or subscription and leaves the
        connection up; the others (stale connection, authorization) are followed by the
        server closing it, and we reconnect."""
        self.errors += 1
        lowered = text.lower()
        error: NatsError = (
            PermissionDenied(text)
            if "permissions violation" in lowered
            else AuthorizationError(text)
            if "authorization" in lowered or "authentication" in lowered
            else NatsError(text)
        )
        where = self.server.url if self.server else "NATS"
        log.warning("NATS error from %s: %s", where, text)
        self._tell(self.options.on_error, error)

    def _tell(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is not None:
            try:
                callback(*args)
            except Exception:
                log.exception("NATS event callback failed")

    # --- the connection's life ----------------------------------------------------------------

    def _attach(self, wire: Wire, server: Server, info: dict[str, Any]) -> None:
        assert wire.transport is not None
        self._wire, self.server = wire, server
        self.server_info = dict(info)
        self.max_payload = int(info.get("max_payload", self.max_payload))
        self._pool.connected(server)
        self._pool.announce(list(info.get("connect_urls") or []), server)
        self._status = CONNECTED
        self._pings_out = 0
        again = [protocol.encode_sub(s.subject, s.sid, s.queue) for s in self._subs.values()]
        self._outbox.attach(wire.transport, again)
        self._ping_timer = self._loop.call_later(self.options.ping_interval, self._ping)
        self._up.set()

    def _lost(self, wire: Wire, exc: Exception | None) -> None:
        if wire is not self._wire:
            return
        self._wire = None
        self._outbox.detach()
        self._up.clear()
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        self._fail_pongs(ConnectionLost("the connection to NATS dropped"))
        self._mux.lost()
        if self._status in (DRAINING, CLOSED):
            return
        self._status = RECONNECTING
        where = self.server.url if self.server else "NATS"
        log.warning("disconnected from %s (%s); reconnecting", where, exc or "closed")
        self._tell(self.options.on_disconnect)
        self._reconnector = self._loop.create_task(self._reconnect(), name="nats-reconnect")

    async def _reconnect(self) -> None:
        while self._status == RECONNECTING:
            wire, server, info = await self._connector.again()
            if self._status != RECONNECTING:  # closed meanwhile
                wire.abort()
                return
            self._attach(wire, server, info)
            self.reconnects += 1
            log.info("reconnected to %s", server.url)
            self._tell(self.options.on_reconnect)

    def _ping(self) -> None:
        if self._status != CONNECTED or self._wire is None:
            return
        if self._pings_out >= self.options.max_outstanding_pings:
            log.warning("no PONG for %d PINGs: the connection is stale", self._pings_out)
            self._wire.abort()
            return
        self._pings_out += 1
        self._pongs.append(None)
        self._send(protocol.PING)
        self._ping_timer = self._loop.call_later(self.options.ping_interval, self._ping)

    def _writing_paused(self, wire: Wire, paused: bool) -> None:
        if wire is self._wire:
            self._outbox.pause(paused)

    def _fail_pongs(self, exc: Exception) -> None:
        waiting, self._pongs = self._pongs, deque()
        for waiter in waiting:
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)

    # --- flush, drain, close --------------------------------------------------------------------

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once the server has read everything sent before (a PING/PONG round trip);
        while reconnecting, once it is back and has done so."""
        try:
            async with asyncio.timeout(timeout):
                while self._status not in (CONNECTED, DRAINING):
                    if self._status == CLOSED:
                        raise ConnectionClosed("the NATS client is closed")
                    await self._up.wait()
                waiter = self._loop.create_future()
                self._pongs.append(waiter)
                self._send(protocol.PING)
                await waiter
        except TimeoutError:
            raise RequestTimeout(f"no PONG from NATS within {timeout}s") from None

    @property
    def is_connected(self) -> bool:
        return self._status == CONNECTED

    @property
    def is_closed(self) -> bool:
        return self._status == CLOSED

    def health(self) -> dict[str, str]:
        """The connection's state for a health page: healthy with the server it is on, or not."""
        if self._status != CONNECTED or self.server is None:
            return {"status": "unhealthy"}
        host = f"[{self.server.host}]" if ":" in self.server.host else self.server.host
        return {"status": "healthy", "server": f"{host}:{self.server.port}"}

    async def drain(self, timeout: float = 10.0) -> None:
        """Unsubscribe everything, let what is in flight arrive and pending requests be
        answered, then close."""
        if self._status == CONNECTED:
            self._status = DRAINING
            for sub in self._subs.values():
                if sub is not self._mux.subscription:  # the answers still to come need it
                    self._send(protocol.encode_unsub(sub.sid))
            with contextlib.suppress(TimeoutError, NatsError):
                async with asyncio.timeout(timeout):
                    await self.flush(timeout)
                    await self._mux.settled()
        await self.close()

    async def close(self) -> None:
        if self._status == CLOSED:
            return
        self._status = CLOSED
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        if self._reconnector is not None:
            self._reconnector.cancel()
        gone = ConnectionClosed("the NATS client is closed")
        self._mux.close(gone)
        self._fail_pongs(gone)
        wire, self._wire = self._wire, None
        self._up.set()  # wakes a flush waiting for a reconnection, which then sees CLOSED
        transport = self._outbox.close()
        if wire is not None and transport is not None:
            transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await wire.closed
