"""The one base of the fake HTTP servers (Anthropic, Kubernetes, MCP): a threaded server on a
free loopback port, started and stopped as a context manager, every request recorded, and
JSON in and out.

A fake subclasses `FakeHttpServer` and answers in `handle`:

    class FakeThing(FakeHttpServer):
        def handle(self, request: Request) -> Response:
            if request.path != "/v1/thing":
                return Response.json(404, {"error": f"no route {request.path}"})
            return Response.json(200, {"got": request.json()})

    with FakeThing() as fake:
        httpx.post(f"{fake.url}/v1/thing", json={"a": 1})
        assert fake.received[0].json() == {"a": 1}
"""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query as sent
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def json(self) -> Any:
        """The body as JSON (an empty body is `{}`); ValueError when it is not JSON."""
        return json.loads(self.body or b"{}")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # A streamed body (Server-Sent Events): each chunk written and flushed as the iterable
    # gives it, the end of the body is the end of the connection (HTTP/1.0, no length).
    chunks: Iterable[bytes] | None = None

    @classmethod
    def json(cls, status: int, doc: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(doc).encode(), "application/json", headers or {})


class FakeHttpServer:
    def __init__(self) -> None:
        self.received: list[Request] = []
        self._lock = threading.Lock()  # subclasses guard their own state with it too
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: Request) -> Response:
        """The answer to one request (called on the server's threads)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` of the running server."""
        assert self._server is not None, f"use {type(self).__name__} as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval: `shutdown()` waits for the serving loop's next poll.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, daemon=True, name=type(self).__name__)
        self._thread.start()

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _answer(self, request: Request) -> Response:
        with self._lock:
            self.received.append(request)
        return self.handle(request)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone before its answer (a killed worker, a held request released after
        the test) is expected here, not worth a traceback; anything else still prints one."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_for(fake: FakeHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = Request(
                method=self.command,
                target=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            answer = fake._answer(request)
            self.send_response(answer.status)
            self.send_header("content-type", answer.content_type)
            if answer.chunks is None:
                self.send_header("content-length", str(len(answer.body)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if answer.chunks is None:
                self.wfile.write(answer.body)
                return
            self.close_connection = True
            for chunk in answer.chunks:
                self.wfile.write(chunk)
                self.wfile.flush()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 - http.server's hook names

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test output is not the place for an access log."""

    return Handler
