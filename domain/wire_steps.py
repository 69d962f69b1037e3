"""Step messages of agent jobs (DESIGN §10): worker → Brain on `baker.jobs.step.<jobId>`.

`{"id", "attempt", "step": k, "kind": "model"|"toolCall"|"toolResult", …}`: pure encode and
decode, lenient about unknown fields like every wire message, strict about values.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field

from domain.events.agent import Usage
from domain.wire import _ID, WireError, WireMessage, decode

StepKind = Literal["model", "toolCall", "toolResult", "approval"]
MAX_TOOL_OUTPUT: Final = 16_384  # characters of a tool's output kept and given to the model
MAX_STEP: Final = 10_000


class StepMessage(WireMessage):
    id: str = _ID
    attempt: int = Field(ge=1, le=1000)
    step: int = Field(ge=1, le=MAX_STEP)
    kind: StepKind
    worker_id: str | None = Field(default=None, max_length=128)
    # model
    model: str | None = Field(default=None, max_length=200)
    stop_reason: str | None = Field(default=None, max_length=64)
    content: list[dict[str, Any]] | None = None
    usage: Usage | None = None
    duration_ms: int | None = Field(default=None, ge=0)
    # toolCall / toolResult
    tool_use_id: str | None = Field(default=None, min_length=1, max_length=256)
    tool: str | None = Field(default=None, min_length=1, max_length=128)
    input: dict[str, Any] | None = None
    output: str | None = Field(default=None, max_length=MAX_TOOL_OUTPUT)
    is_error: bool | None = None


_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "model": ("model", "content"),
    "toolCall": ("tool_use_id", "tool", "input"),
    "toolResult": ("tool_use_id", "output"),
    "approval": ("tool_use_id", "tool", "input"),
}


def decode_step(raw: bytes | str) -> StepMessage:
    """A step message, with the fields its kind needs; `WireError` names the first missing."""
    msg = decode(StepMessage, raw)
    for name in _REQUIRED[msg.kind]:
        if getattr(msg, name) is None:
            camel = StepMessage.model_fields[name].alias or name
            raise WireError(camel, f"required for a {msg.kind} step")
    return msg


def encode_step(
    job_id: str, attempt: int, step: int, kind: StepKind, *, worker_id: str | None = None,
    **fields: Any,
) -> bytes:  # fmt: skip
    """A step message's bytes: camelCase, unset fields left out (fields in snake_case)."""
    msg = StepMessage(id=job_id, attempt=attempt, step=step, kind=kind, worker_id=worker_id,
                      **fields)  # fmt: skip
    return msg.encode()


def cap_output(text: str) -> str:
    """A tool's output as recorded and as the model sees it: at most `MAX_TOOL_OUTPUT`
    characters, ending with a note of how much was cut."""
    if len(text) <= MAX_TOOL_OUTPUT:
        return text
    keep = MAX_TOOL_OUTPUT - 64
    return f"{text[:keep]}\n[output cut: {len(text) - keep} more characters]"
