"""One TCP connection to a NATS server as an asyncio `Protocol`, and its handshake.

Reads are parsed in `data_received` itself and handed to the client as operations: no read
task to wake, no queue per message. Until the handshake is done (INFO read, CONNECT and PING
sent, PONG back) the operations go to the handshake's futures instead; a `-ERR` then ends the
attempt with the server's words.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from adapters.nats import protocol
from adapters.nats.errors import AuthorizationError, NatsError
from adapters.nats.message import Msg

log = logging.getLogger("baker.nats")
Ops = list[protocol.Op[Msg]]


class Owner(Protocol):
    """What the wire tells its client once connected."""

    def _received(self, wire: Wire, ops: Ops) -> None: ...
    def _lost(self, wire: Wire, exc: Exception | None) -> None: ...
    def _writing_paused(self, wire: Wire, paused: bool) -> None: ...


class Wire(asyncio.Protocol):
    def __init__(self, owner: Owner, make: protocol.MsgFactory[Msg]) -> None:
        loop = asyncio.get_running_loop()
        self.parser = protocol.Parser(make)
        self.transport: asyncio.Transport | None = None
        self.info: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._owner = owner
        self._established = False

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            ops = self.parser.feed(data)
        except protocol.ProtocolError as exc:
            log.error("NATS protocol error, dropping the connection: %s", exc)
            self._fail(exc)
            return
        if self._established:
            self._owner._received(self, ops)
        else:
            self._handshake(ops)

    def connection_lost(self, exc: Exception | None) -> None:
        error = exc or ConnectionResetError("connection closed by the server")
        for future in (self.info, self.ready):
            if not future.done():
                future.set_exception(error)
                future.exception()  # the dialler may be gone already: never "never retrieved"
        if not self.closed.done():
            self.closed.set_result(None)
        if self._established:
            self._owner._lost(self, exc)

    def pause_writing(self) -> None:
        self._owner._writing_paused(self, True)

    def resume_writing(self) -> None:
        self._owner._writing_paused(self, False)

    # --- the handshake ------------------------------------------------------------------------

    def _handshake(self, ops: Ops) -> None:
        for i, op in enumerate(ops):
            if isinstance(op, protocol.Info) and not self.info.done():
                self.info.set_result(op.options)
            elif not self.info.done():
                self._fail(NatsError(f"the server spoke before INFO: {op!r}"))
                return
            elif op is protocol.PONG_OP and not self.ready.done():
                self.ready.set_result(None)
                self._established = True
                self._owner._received(self, ops[i + 1 :])  # what came with the PONG
                return
            elif isinstance(op, protocol.Err):
                refused = _auth_error(op.text)
                self._fail(refused or NatsError(f"the server refused the connection: {op.text}"))
                return
            elif op is protocol.PING_OP and self.transport is not None:
                self.transport.write(protocol.PONG)

    def _fail(self, exc: Exception) -> None:
        for future in (self.info, self.ready):
            if not future.done():
                future.set_exception(exc)
                future.exception()
        if self.transport is not None:
            self.transport.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


_REFUSALS = ("authorization", "authentication", "user credentials", "permissions violation")


def _auth_error(text: str) -> AuthorizationError | None:
    lowered = text.lower()
    if any(word in lowered for word in _REFUSALS):
        return AuthorizationError(text)
    return None


async def dial(
    host: str,
    port: int,
    make: protocol.MsgFactory[Msg],
    owner: Owner,
    check: Callable[[dict[str, Any]], bytes],
) -> tuple[Wire, dict[str, Any]]:
    """Connect and shake hands: `check` judges the INFO (raising to refuse the server) and
    returns the CONNECT to send. The caller bounds the time (`asyncio.timeout`)."""
    loop = asyncio.get_running_loop()
    wire = Wire(owner, make)
    try:
        await loop.create_connection(lambda: wire, host, port)
        info = await wire.info
        assert wire.transport is not None
        wire.transport.write(check(info) + protocol.PING)
        await wire.ready
    except BaseException:
        wire.abort()
        raise
    return wire, info
