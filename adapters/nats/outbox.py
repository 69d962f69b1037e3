"""What is waiting to be written to NATS, written in one `write` per event-loop turn.

A publish only appends its bytes here; the first one in a turn schedules `flush` with
`call_soon`, so a burst of publishes (a batch of acks, pipelined appends) costs one system
call, and no publish awaits anything. While the connection is down the bytes wait here, up to
`limit` (past it, `OutboundBufferFull`), and go first thing on the next connection, after the
subscriptions; our PINGs meant for the old connection are dropped then (their PONGs would
answer the waiters of later ones; an extra PONG is harmless to the server). When the socket
is behind (its buffer over `high_water`, asyncio's `pause_writing`), or too much is waiting
for a reconnection, `congested` is true and `writable()` waits until it is not.
"""

from __future__ import annotations

import asyncio

from adapters.nats import protocol
from adapters.nats.errors import ConnectionClosed, OutboundBufferFull


class Outbox:
    def __init__(self, limit: int, high_water: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        self._high_water = high_water
        self._out: list[bytes] = []
        self._size = 0
        self._due = False
        self._transport: asyncio.Transport | None = None
        self._paused = False
        self._closed = False
        self._waiting: list[asyncio.Future[None]] = []

    def send(self, cmd: bytes) -> None:
        if self._transport is None:
            self._may_wait(len(cmd))
        self._out.append(cmd)
        self._size += len(cmd)
        if not self._due:
            self._due = True
            self._loop.call_soon(self.flush)

    def _may_wait(self, size: int) -> None:
        if self._closed:
            raise ConnectionClosed("the NATS client is closed")
        if self._size + size > self._limit:
            raise OutboundBufferFull(
                f"{self._size} bytes are waiting for the connection to NATS to come back"
            )

    def flush(self) -> None:
        self._due = False
        out, transport = self._out, self._transport
        if out and transport is not None:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            self._out = []
            self._size = 0

    def attach(self, transport: asyncio.Transport, first: list[bytes]) -> None:
        """A new connection: `first` (the subscriptions), then what waited, at once."""
        transport.set_write_buffer_limits(high=self._high_water)
        self._transport = transport
        self._paused = False
        kept = [c for c in self._out if c is not protocol.PING]
        self._out = first + kept
        self._size = sum(map(len, self._out))
        self.flush()
        self._wake()

    def detach(self) -> None:
        """The connection is gone (what it had not sent yet is lost with it)."""
        self._transport = None
        self._paused = False

    def close(self) -> asyncio.Transport | None:
        """Write what is left and refuse more; the transport, for the caller to close."""
        self.flush()
        transport, self._transport = self._transport, None
        self._closed = True
        self._wake()
        return transport

    def pause(self, paused: bool) -> None:
        self._paused = paused
        if not paused:
            self._wake()

    @property
    def congested(self) -> bool:
        return self._paused or (self._transport is None and self._size > self._high_water)

    async def writable(self) -> None:
        while self.congested and not self._closed:
            waiter = self._loop.create_future()
            self._waiting.append(waiter)
            await waiter
        if self._closed:
            raise ConnectionClosed("the NATS client is closed")

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)
