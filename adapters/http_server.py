"""uvicorn's HTTP protocol with each event-loop turn's writes sent in one system call.

uvicorn writes a response's head when the app sends `http.response.start` and its body when
the app sends `http.response.body`: two `send` calls a response, back to back in the same
turn. On loopback a `send` also runs the receiving side of TCP, so it is the dearest call a
request makes: a third of the API's own CPU for POST /api/jobs in `python -m bench api`
beside the dispatch. `CoalescedHttp` hands uvicorn a transport that gathers what is written
during a turn and writes it once at the next (`call_soon`), as `adapters.nats.outbox` does
for NATS. Everything else goes straight to asyncio's transport; closing writes what waits
first, aborting drops it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes of one loop turn reach the socket as one write."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._out: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._out:
            self._loop.call_soon(self.flush)
        self._out.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        out, self._out = self._out, []
        if out and not self._transport.is_closing():
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._out))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._out = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # Only names not defined above (reading, extra info, closing state) reach here.
        return getattr(self._transport, name)


class CoalescedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `CoalescingTransport` (`uvicorn.Config(http=...)`)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(CoalescingTransport(transport))  # type: ignore[arg-type]
