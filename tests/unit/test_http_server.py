"""`CoalescedHttp`: a turn's writes reach the socket once, and HTTP through it is unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from adapters.http_server import CoalescedHttp, CoalescingTransport
from tests.polling import until


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else default


async def a_turn() -> None:
    await asyncio.sleep(0)


def coalescing() -> tuple[FakeTransport, CoalescingTransport]:
    """A coalescing transport over a fake one (made inside a running loop)."""
    raw = FakeTransport()
    return raw, CoalescingTransport(raw)


async def test_the_writes_of_one_turn_go_out_as_one() -> None:
    raw, out = coalescing()
    out.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    out.write(memoryview(b'{"id":'))
    out.writelines([b'"job-1"', b"}"])
    whole = b'HTTP/1.1 202 Accepted\r\n\r\n{"id":"job-1"}'
    assert raw.writes == [] and out.get_write_buffer_size() == 7 + len(whole)
    await a_turn()
    assert raw.writes == [whole]
    out.write(b"next")
    await a_turn()
    assert raw.writes[1:] == [b"next"]


async def test_close_writes_what_waits_first_and_abort_drops_it() -> None:
    raw, out = coalescing()
    out.write(b"last words")
    out.close()
    assert raw.writes == [b"last words"] and raw.closed
    await a_turn()  # the flush scheduled by the write finds nothing left
    assert raw.writes == [b"last words"]
    raw2, out2 = coalescing()
    out2.write(b"never sent")
    out2.abort()
    await a_turn()
    assert raw2.writes == [] and raw2.aborted


async def test_nothing_is_written_to_a_closing_transport_and_eof_follows_the_data() -> None:
    raw, out = coalescing()
    out.write(b"data")
    out.write_eof()
    assert raw.writes == [b"data"] and raw.eof
    out.write(b"too late")
    raw.closed = True
    await a_turn()
    assert raw.writes == [b"data"]


async def test_other_names_go_to_the_transport() -> None:
    _, out = coalescing()
    assert out.get_extra_info("peername") == ("127.0.0.1", 1234)
    assert out.is_closing() is False


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)  # each part in a turn of its own
        await send({"type": "http.response.body", "body": b""})
        return
    message = await receive()
    body = b'{"echo":' + (message.get("body") or b'""') + b"}"
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def served() -> AsyncIterator[str]:
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=0, http=CoalescedHttp, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def test_requests_on_one_kept_alive_connection_are_answered_whole(served: str) -> None:
    async with httpx.AsyncClient(base_url=served) as client:
        for n in range(3):
            answer = await client.post("/jobs", content=f'"{n}"')
            assert answer.status_code == 202
            assert answer.json() == {"echo": str(n)}
        streamed = await client.get("/stream")
        assert streamed.status_code == 200 and streamed.text == "one two three"
