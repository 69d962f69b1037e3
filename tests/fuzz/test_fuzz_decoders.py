"""Fuzzing the decoders of what arrives from outside (DESIGN §3 wire messages, task and
extension messages, stored events): whatever the bytes, a decoder returns a message or raises
its own error naming the field and why, never anything else; what it returns can be sent on
and decoded again."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from domain import tasks
from domain.events import EventDecodeError, decode_event, encode_event
from domain.events.base import event_types
from domain.wire import (
    DispatchMessage,
    ResultMessage,
    StatusMessage,
    WireError,
    decode_dispatch,
    decode_result,
    decode_status,
)
from domain.wire_output import OutputMessage, decode_output
from domain.wire_steps import StepMessage, decode_step
from domain.wire_system import (
    ExtensionAnnounce,
    ExtensionDeregister,
    ExtensionHeartbeat,
    HealthHeartbeat,
    decode_announce,
    decode_deregister,
    decode_extension_heartbeat,
    decode_health,
)
from tests.fuzz.strategies import documents, encoded

EXAMPLES = int(os.environ.get("BAKER_FUZZ_EXAMPLES", "100"))  # per decoder


def _keys(model: type[BaseModel]) -> list[str]:
    names = {"jobId", "job_id"}
    for name, info in model.model_fields.items():
        names |= {name, info.alias or name}
    return sorted(names)


ID = "job-0123456789abcdef"
DECODERS: dict[str, tuple[Callable[[bytes], BaseModel], type[BaseModel], dict[str, Any]]] = {
    "dispatch": (decode_dispatch, DispatchMessage,
                 {"id": ID, "type": "command", "payload": {"command": "date"}}),
    "status": (decode_status, StatusMessage, {"id": ID, "status": "running", "attempt": 1}),
    "result": (decode_result, ResultMessage, {"id": ID, "status": "completed", "result": {}}),
    "step": (decode_step, StepMessage,
             {"id": ID, "attempt": 1, "step": 1, "kind": "model", "model": "m", "content": []}),
    "output": (decode_output, OutputMessage,
               {"id": ID, "attempt": 1, "seq": 1, "stream": "stdout", "data": "x"}),
    "announce": (decode_announce, ExtensionAnnounce,
                 {"id": "ext-1", "name": "ext", "version": "1", "mcpUrl": "http://x/mcp"}),
    "heartbeat": (decode_extension_heartbeat, ExtensionHeartbeat, {"id": "ext-1"}),
    "deregister": (decode_deregister, ExtensionDeregister, {"id": "ext-1"}),
    "health": (decode_health, HealthHeartbeat, {"service": "brain", "instance": "brain-1"}),
    "task status": (lambda raw: tasks.decode(tasks.TaskStatusMessage, raw),
                    tasks.TaskStatusMessage, {"taskId": "task-1", "status": "running"}),
    "task result": (lambda raw: tasks.decode(tasks.TaskResultMessage, raw),
                    tasks.TaskResultMessage, {"taskId": "task-1", "status": "completed"}),
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def timed() -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"\nfuzz decoders: {time.perf_counter() - started:.1f} s")  # shown with -s


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_a_wire_decoder_returns_a_message_or_names_the_bad_field(kind: str) -> None:
    decoder, model, base = DECODERS[kind]

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(encoded(documents(_keys(model), base)))
    def fuzz(raw: bytes) -> None:
        try:
            msg = decoder(raw)
        except WireError as exc:
            assert isinstance(exc.field, str) and exc.field, repr(exc)
            assert exc.reason and str(exc).startswith(f"{exc.field}: "), repr(exc)
            return
        assert isinstance(msg, model)
        sent: bytes = msg.encode()  # type: ignore[attr-defined]  # what we decoded, we can send on (an unknown null field is left out)
        assert decoder(sent).encode() == sent  # type: ignore[attr-defined]

    fuzz()


ENVELOPE_KEYS = [
    "eventId", "type", "aggregate", "aggregateId", "version", "occurredAt", "data", "schema",
    "traceId", "causationId", "correlationId", "hash", "prevHash",
]  # fmt: skip
TYPES = sorted(event_types())


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """An envelope of a known event type, its data made of that event's field names."""
    name = draw(st.sampled_from(TYPES))
    cls = event_types()[name]
    fields = sorted(
        {info.alias or n for n, info in cls.model_fields.items()} | set(cls.model_fields)
    )
    data = draw(documents(fields))
    base = {"eventId": "e-1", "type": name, "aggregate": cls.aggregate or "job",
            "aggregateId": ID, "version": 1, "occurredAt": "2026-12-05T10:00:00+00:00",
            "data": data}  # fmt: skip
    return draw(documents(ENVELOPE_KEYS, base))


@settings(max_examples=EXAMPLES * 5, deadline=None, database=None)
@given(encoded(envelopes()))
def test_the_event_decoder_returns_an_envelope_or_says_what_is_wrong(raw: bytes) -> None:
    try:
        envelope = decode_event(raw)
    except EventDecodeError as exc:
        assert str(exc), "an EventDecodeError without a message"
        return
    assert decode_event(encode_event(envelope)) == envelope
