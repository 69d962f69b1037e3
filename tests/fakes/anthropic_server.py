"""A fake Anthropic Messages API on 127.0.0.1 that the real `anthropic` SDK talks to over HTTP.

Each test scripts the answers (a queue of `Reply`s, or a function of the request) and then reads
`requests` to see what the SDK sent, e.g. the `tool_result` blocks of a tool-use loop:

    with FakeAnthropic([tool_use("command", {"command": "echo hi"}), text_message("done")]) as api:
        await run_agent(..., base_url=api.base_url)
        assert api.requests[1]["messages"][-1]["content"][0]["type"] == "tool_result"

A request with `"stream": true` gets the same reply as Server-Sent Events
(`anthropic_stream`). Gates (`threading.Event`s the test sets) hold a reply: `begin` before any
of it is sent, `hold` after its first delta (a plain answer: before answering).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.anthropic_stream import HOLD_LIMIT, stream_events
from tests.fakes.http_base import FakeHttpServer, Request, Response

_ids = itertools.count(1)


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None
    begin: threading.Event | None = None


Script = Callable[[dict[str, Any]], Reply]


def message(
    content: list[dict[str, Any]],
    stop_reason: str,
    usage: tuple[int, int],
    hold: threading.Event | None = None,
    begin: threading.Event | None = None,
) -> Reply:
    """A 200 answer in the Messages API's shape; `model` is filled from the request."""
    body = {
        "id": f"msg_fake_{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }
    return Reply(200, body, hold=hold, begin=begin)


def text_message(
    text: str,
    usage: tuple[int, int] = (10, 5),
    *,
    hold: threading.Event | None = None,
    begin: threading.Event | None = None,
) -> Reply:
    """The model's final answer."""
    return message([{"type": "text", "text": text}], "end_turn", usage, hold, begin)


def tool_use(
    name: str,
    tool_input: dict[str, Any],
    *,
    text: str | None = None,
    usage: tuple[int, int] = (10, 5),
    hold: threading.Event | None = None,
) -> Reply:
    """The model asking for one tool call (optionally after some text)."""
    block = {
        "type": "tool_use",
        "id": f"toolu_fake_{next(_ids)}",
        "name": name,
        "input": tool_input,
    }
    content: list[dict[str, Any]] = [{"type": "text", "text": text}, block] if text else [block]
    return message(content, "tool_use", usage, hold)


def error(status: int, kind: str, text: str, headers: dict[str, str] | None = None) -> Reply:
    """An error in the API's shape: `{"type": "error", "error": {"type", "message"}}`."""
    body = {"type": "error", "error": {"type": kind, "message": text}}
    return Reply(status, body, headers or {})


def rate_limited() -> Reply:
    # `retry-after: 0` as the API may send; `retry-after-ms` keeps the SDK's wait at 1 ms.
    return error(
        429, "rate_limit_error", "rate limited", {"retry-after": "0", "retry-after-ms": "1"}
    )


def server_error() -> Reply:
    return error(500, "api_error", "internal server error", {"retry-after-ms": "1"})


class FakeAnthropic(FakeHttpServer):
    """The fake server as a context manager: `with FakeAnthropic(script) as api: api.base_url`."""

    def __init__(self, script: Iterable[Reply] | Script = ()) -> None:
        super().__init__()
        self._script: Script | None = script if callable(script) else None
        self._queue: deque[Reply] = deque() if callable(script) else deque(script)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    @property
    def base_url(self) -> str:
        return self.url

    def push(self, *replies: Reply) -> None:
        """Queue more answers."""
        with self._lock:
            self._queue.extend(replies)

    def answer(self, request: dict[str, Any], headers: dict[str, str]) -> Reply:
        """Record the request and pick the scripted reply (a 500 that forbids retries if none)."""
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)
            if self._script is not None:
                return self._script(request)
            if self._queue:
                return self._queue.popleft()
        return error(500, "api_error", "fake: no scripted reply left", {"x-should-retry": "false"})

    def handle(self, request: Request) -> Response:
        if request.method == "GET":  # `GET /v1/models`: something an `http` tool can fetch
            if request.path != "/v1/models":
                return _send(error(404, "not_found_error", f"no route {request.target}"))
            models = [{"type": "model", "id": "claude-fake-1", "display_name": "Fake"}]
            return _send(Reply(200, {"data": models, "has_more": False}))
        if request.path != "/v1/messages":
            return _send(error(404, "not_found_error", f"no route {request.target}"))
        body = request.json()
        reply = self.answer(body, request.headers)
        if reply.status != 200:
            return _send(reply)  # errors are plain JSON, streamed request or not
        if reply.begin is not None:
            reply.begin.wait(HOLD_LIMIT)
        whole = {"model": body.get("model"), **reply.body}
        if body.get("stream"):
            headers = {"request-id": f"req_fake_{next(_ids)}", **reply.headers}
            chunks = stream_events(whole, reply.hold)
            return Response(200, content_type="text/event-stream", headers=headers, chunks=chunks)
        if reply.hold is not None:
            reply.hold.wait(HOLD_LIMIT)
        return _send(Reply(200, whole, reply.headers))


def _send(reply: Reply) -> Response:
    return Response.json(reply.status, reply.body, {"request-id": f"req_fake_{next(_ids)}",
                                                    **reply.headers})  # fmt: skip
