"""A minimal MCP client: the tool list of an extension, over MCP's streamable-HTTP transport.

One exchange is `initialize` → `notifications/initialized` → `tools/list` (following
`nextCursor`), each a JSON-RPC 2.0 POST to the extension's `mcpUrl`. Answers may be plain JSON
or a short `text/event-stream` (what MCP SDK servers send by default); both are read. A failed
exchange is retried from the start a bounded number of times, then `McpError` says why.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import httpx
import orjson

from domain.wire_system import normalize_tool

log = logging.getLogger("baker.mcp")
PROTOCOL_VERSION = "2025-03-26"
CLIENT_INFO = {"name": "baker-monitor", "version": "0.1.0"}
MAX_PAGES = 50  # a server that keeps handing out cursors must not hold discovery forever
_ids = itertools.count(1)


class McpError(Exception):
    """The extension's MCP endpoint did not give a usable tool list."""


async def list_tools(
    url: str,
    *,
    client: httpx.AsyncClient | None = None,
    retries: int = 3,
    delay: float = 3.0,
    timeout: float = 5.0,
) -> list[dict[str, Any]]:
    """The tools an MCP server offers, each `{name, description?, inputSchema?}`.

    Tries once, then up to `retries` more times `delay` seconds apart (upstream: 3 retries,
    3 s apart); `timeout` bounds each HTTP request. Raises `McpError` naming the last failure.
    """
    if client is None:
        async with httpx.AsyncClient(timeout=timeout) as own:
            return await list_tools(url, client=own, retries=retries, delay=delay, timeout=timeout)
    attempts = max(retries, 0) + 1
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return await _exchange(client, url, timeout)
        except (httpx.HTTPError, McpError, ValueError) as exc:
            last = exc
            log.info("tools/list at %s failed (attempt %d/%d): %s", url, attempt, attempts, exc)
        if attempt < attempts:
            await asyncio.sleep(delay)
    raise McpError(f"tools/list at {url} failed after {attempts} attempts: {last}") from last


async def _exchange(client: httpx.AsyncClient, url: str, timeout: float) -> list[dict[str, Any]]:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    answer_headers, init = await _call(client, url, headers, timeout, "initialize", {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO,
    })  # fmt: skip
    session = answer_headers.get("mcp-session-id")
    if session:
        headers["mcp-session-id"] = session
    version = init.get("protocolVersion")
    if isinstance(version, str):
        headers["mcp-protocol-version"] = version
    # The spec wants this notification before other requests (servers answer 202, no body).
    # Its answer is not checked: a server that dislikes it still shows that in `tools/list`.
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    await client.post(url, content=orjson.dumps(note), headers=headers, timeout=timeout)
    tools: list[dict[str, Any]] = []
    params: dict[str, Any] = {}
    for _ in range(MAX_PAGES):
        _, page = await _call(client, url, headers, timeout, "tools/list", params)
        items = page.get("tools")
        if not isinstance(items, list):
            raise McpError("tools/list: the result has no `tools` list")
        tools.extend(normalize_tool(item) for item in items)
        cursor = page.get("nextCursor")
        if not isinstance(cursor, str) or not cursor:
            return tools
        params = {"cursor": cursor}
    raise McpError(f"tools/list: more than {MAX_PAGES} pages")


async def _call(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    timeout: float,
    method: str,
    params: dict[str, Any],
) -> tuple[httpx.Headers, dict[str, Any]]:
    """POST one request; the answer's headers and its JSON-RPC result."""
    request_id = next(_ids)
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    reply = await client.post(url, content=orjson.dumps(body), headers=headers, timeout=timeout)
    if reply.status_code >= 400:
        raise McpError(f"{method}: HTTP {reply.status_code} {reply.text[:200]!r}")
    return reply.headers, _answer(reply, request_id, method)


def _answer(reply: httpx.Response, request_id: int, method: str) -> dict[str, Any]:
    """The JSON-RPC result for `request_id`, from a JSON body or an event stream."""
    kind = reply.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "text/event-stream":
        docs = [_load(data, method) for data in _sse_data(reply.text)]
    else:
        docs = [_load(reply.text, method)]
    # A batch answer is a list; flatten it so the lookup below sees each response.
    docs = [d for doc in docs for d in (doc if isinstance(doc, list) else [doc])]
    for doc in docs:
        if isinstance(doc, dict) and doc.get("id") == request_id:
            if "error" in doc:
                raise McpError(f"{method}: JSON-RPC error {doc['error']!r}")
            result = doc.get("result")
            if not isinstance(result, dict):
                raise McpError(f"{method}: the answer has no result object")
            return result
    raise McpError(f"{method}: no answer to request {request_id}")


def _load(text: str, method: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise McpError(f"{method}: the answer is not JSON: {text[:200]!r}") from None


def _sse_data(text: str) -> list[str]:
    """The `data` of each event in a finished event stream (multi-line data joined by \\n)."""
    events: list[str] = []
    lines: list[str] = []
    for line in [*text.splitlines(), ""]:
        if not line:
            if lines:
                events.append("\n".join(lines))
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
    return events
