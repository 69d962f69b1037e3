"""Building the envelopes the executor appends: event ids, versions, time and generation.

An event appended because of a cause (a worker's message, an advisory) gets an id derived from
that cause, so appending the same effect again (a redelivery) inside the store's dedupe window
stores nothing new; any other event gets a random id.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime

from adapters.eventstore import Position
from domain.events import DomainEvent, Envelope

_CAUSED = uuid.UUID("6f1d3c52-7b0e-4c1e-9f43-2d4b8a9e5c11")


def envelope(
    aggregate: str,
    aggregate_id: str,
    event: DomainEvent,
    expected: Position,
    index: int,
    trace_id: str | None,
    causation_id: str | None,
    generation: int | None,
) -> Envelope:
    """The `index`-th event appended after `expected`, as stored."""
    return Envelope(
        event_id=event_id(causation_id, aggregate, aggregate_id, index),
        aggregate=aggregate,
        aggregate_id=aggregate_id,
        version=expected.version + index + 1,
        occurred_at=datetime.now(UTC),
        data=event,
        trace_id=trace_id,
        causation_id=causation_id,
        generation=generation,
    )


def event_id(causation_id: str | None, aggregate: str, aggregate_id: str, index: int) -> str:
    """uuid5 of the cause and the event's place in what it caused; random without a cause."""
    if causation_id is None:
        # A random version-4 UUID; `random` is fine here: ids need uniqueness, not secrecy,
        # and it is several times cheaper than `uuid4()`'s system call on the append path.
        return _random_uuid4()
    # uuid5(_CAUSED, name), computed without building UUID objects (hot path of the ingest).
    name = f"{aggregate}/{aggregate_id}/{causation_id}/{index}".encode()
    h = bytearray(hashlib.sha1(_CAUSED.bytes + name, usedforsecurity=False).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _random_uuid4() -> str:
    h = f"{random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
