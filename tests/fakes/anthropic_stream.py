"""The Messages API's streamed answer (`"stream": true`), built from a whole reply.

The events the real API sends, in its order: `message_start` (the message with no content
yet, its input usage), per content block `content_block_start`, its deltas (`text_delta`
word by word, `input_json_delta` for a tool's input in pieces) and `content_block_stop`, then
`message_delta` (stop reason, output tokens) and `message_stop`; a `ping` after the start.
The SDK's `get_final_message()` over them equals the reply sent without streaming.

With a `hold` gate, the stream stops after its first delta until the test sets it (for at
most `HOLD_LIMIT` seconds, so a forgotten gate fails the test instead of hanging it).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

HOLD_LIMIT = 30.0
JSON_PIECE = 12  # characters of a tool's input per `input_json_delta`


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def words(text: str) -> list[str]:
    """`text` in pieces that join back to it: each word with the space after it."""
    return re.findall(r"\s*\S+\s*|\s+", text) or [text]


def stream_events(message: dict[str, Any], hold: threading.Event | None = None) -> Iterator[bytes]:
    usage = dict(message.get("usage") or {})
    output_tokens = usage.pop("output_tokens", 0)
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}  # fmt: skip
    yield sse("message_start", {"type": "message_start", "message": start})
    yield sse("ping", {"type": "ping"})
    held = hold is None
    for index, block in enumerate(message.get("content") or []):
        empty, deltas = _split(block)
        started = {"type": "content_block_start", "index": index, "content_block": empty}
        yield sse("content_block_start", started)
        for delta in deltas:
            yield sse("content_block_delta",
                      {"type": "content_block_delta", "index": index, "delta": delta})  # fmt: skip
            if not held and hold is not None:
                held = True
                hold.wait(HOLD_LIMIT)
        yield sse("content_block_stop", {"type": "content_block_stop", "index": index})
    delta = {"stop_reason": message.get("stop_reason"),
             "stop_sequence": message.get("stop_sequence")}  # fmt: skip
    yield sse("message_delta", {"type": "message_delta", "delta": delta,
                                "usage": {"output_tokens": output_tokens}})  # fmt: skip
    yield sse("message_stop", {"type": "message_stop"})


def _split(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A content block as `content_block_start` shows it, and the deltas that complete it."""
    if block["type"] == "text":
        pieces = words(block["text"])
        return {**block, "text": ""}, [{"type": "text_delta", "text": p} for p in pieces]
    if block["type"] == "tool_use":
        raw = json.dumps(block["input"])
        pieces = [raw[i : i + JSON_PIECE] for i in range(0, len(raw), JSON_PIECE)]
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        return {**block, "input": {}}, deltas
    return block, []  # a block kind we do not stream arrives whole
