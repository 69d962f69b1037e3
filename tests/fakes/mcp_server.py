"""A fake MCP extension endpoint on 127.0.0.1 (streamable HTTP, JSON-RPC 2.0 over POST).

It answers `initialize` (handing out an `Mcp-Session-Id`), `notifications/initialized` (202)
and `tools/list` (paged when `page_size` is set), can fail the first N requests with a 500 to
exercise retries, and records every request:

    with FakeMcp(tools=[tool("weather")], fail_first=2) as mcp:
        tools = await list_tools(mcp.url, delay=0)
        assert mcp.methods() == ["initialize", "initialize", "initialize", ...]
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from tests.fakes.http_base import FakeHttpServer, Request, Response


def tool(name: str, description: str = "", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tool definition as `tools/list` gives it."""
    return {
        "name": name,
        "description": description or f"the {name} tool",
        "inputSchema": schema or {"type": "object", "properties": {}},
    }


class FakeMcp(FakeHttpServer):
    """The fake server as a context manager: `with FakeMcp(tools) as mcp: mcp.url`."""

    def __init__(
        self,
        tools: Iterable[dict[str, Any]] = (),
        *,
        fail_first: int = 0,
        page_size: int | None = None,
        sse: bool = False,
        require_session: bool = True,
    ) -> None:
        super().__init__()
        self._tools = list(tools)
        self.fail_first = fail_first
        self.page_size = page_size
        self.sse = sse
        self.require_session = require_session
        self.requests: list[dict[str, Any]] = []
        self.sessions: set[str] = set()

    @property
    def url(self) -> str:
        """The MCP endpoint (`/mcp` on the server)."""
        return f"{super().url}/mcp"

    @property
    def tools(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._tools)

    def set_tools(self, tools: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            self._tools = list(tools)

    def fail_next(self, count: int) -> None:
        """Answer the next `count` requests with a 500."""
        with self._lock:
            self.fail_first = count

    def methods(self) -> list[str]:
        """The JSON-RPC method of every request so far (failed ones included)."""
        with self._lock:
            return [str(r.get("method")) for r in self.requests]

    def answer(self, request: dict[str, Any], session: str | None) -> tuple[int, Any, str | None]:
        """Status, JSON body (None for no body) and the session id to hand out."""
        with self._lock:
            self.requests.append(request)
            if self.fail_first > 0:
                self.fail_first -= 1
                return 500, {"error": "fake: failing on purpose"}, None
            tools = list(self._tools)
        method, rid = request.get("method"), request.get("id")
        if method == "initialize":
            new = uuid.uuid4().hex
            with self._lock:
                self.sessions.add(new)
            result = {
                "protocolVersion": request.get("params", {}).get("protocolVersion", "2025-03-26"),
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "fake-mcp", "version": "1.0.0"},
            }
            return 200, {"jsonrpc": "2.0", "id": rid, "result": result}, new
        if self.require_session and session not in self.sessions:
            return 400, {"jsonrpc": "2.0", "id": rid, "error": _err(-32000, "no session")}, None
        if method == "notifications/initialized":
            return 202, None, None
        if method == "tools/list":
            return 200, {"jsonrpc": "2.0", "id": rid, "result": self._page(tools, request)}, None
        return 200, {"jsonrpc": "2.0", "id": rid, "error": _err(-32601, "method not found")}, None

    def _page(self, tools: list[dict[str, Any]], request: dict[str, Any]) -> dict[str, Any]:
        if self.page_size is None:
            return {"tools": tools}
        start = int(request.get("params", {}).get("cursor") or 0)
        end = start + self.page_size
        page: dict[str, Any] = {"tools": tools[start:end]}
        if end < len(tools):
            page["nextCursor"] = str(end)
        return page

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return Response.json(405, {"error": f"{request.method} is not supported"})
        try:
            body = request.json()
        except ValueError:
            return Response.json(
                400, {"jsonrpc": "2.0", "id": None, "error": _err(-32700, "parse")}
            )
        if request.path != "/mcp":
            return Response.json(404, {"error": f"no route {request.target}"})
        status, doc, session = self.answer(body, request.headers.get("mcp-session-id"))
        headers = {"mcp-session-id": session} if session else {}
        if doc is None:
            return Response(status, b"", "application/json", headers)
        if self.sse and status == 200:
            data = f"event: message\ndata: {json.dumps(doc)}\n\n".encode()
            return Response(status, data, "text/event-stream", headers)
        return Response.json(status, doc, headers)


def _err(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}
