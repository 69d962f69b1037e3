"""A fake Kubernetes API on 127.0.0.1: `POST /apis/batch/v1/namespaces/{ns}/jobs`.

It records every Job posted (with its namespace and Authorization header), answers 201 with the
object (plus `metadata.uid`), 401 for a wrong bearer token, 409 for a name that exists, and a
scripted refusal (a K8s `Status` error) when one is set:

    with FakeKubernetes(token="t0k") as api:
        api.refuse(403, "Forbidden", 'jobs.batch is forbidden: User "x" cannot create ...')
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Posted:
    namespace: str
    authorization: str | None
    body: dict[str, Any]


def status_error(code: int, reason: str, message: str) -> dict[str, Any]:
    """The API's error body: a `Status` object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKubernetes:
    def __init__(self, token: str | None = "test-token") -> None:
        self.token = token
        self.jobs: list[Posted] = []
        self._refusal: tuple[int, dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "use FakeKubernetes as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def refuse(self, code: int, reason: str, message: str) -> None:
        """Answer every following POST with this `Status` error."""
        self._refusal = (code, status_error(code, reason, message))

    def answer(self, path: str, auth: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) != 6 or parts[:4] != ["apis", "batch", "v1", "namespaces"]:
            return 404, status_error(404, "NotFound", f"the server could not find {path}")
        if parts[5] != "jobs":
            return 404, status_error(404, "NotFound", f"the server could not find {path}")
        if self.token is not None and auth != f"Bearer {self.token}":
            return 401, status_error(401, "Unauthorized", "Unauthorized")
        with self._lock:
            if self._refusal is not None:
                return self._refusal
            name = body.get("metadata", {}).get("name")
            if any(job.body["metadata"]["name"] == name for job in self.jobs):
                return 409, status_error(
                    409, "AlreadyExists", f'jobs.batch "{name}" already exists'
                )
            self.jobs.append(Posted(parts[4], auth, body))
        created = json.loads(json.dumps(body))
        created["metadata"]["uid"] = str(uuid.uuid4())
        return 201, created

    def __enter__(self) -> FakeKubernetes:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        serve = functools.partial(self._server.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(api: FakeKubernetes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, status_error(400, "BadRequest", "body is not JSON"))
                return
            self._send(*api.answer(self.path, self.headers.get("authorization"), body))

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler
