"""Event store port and implementations (in-memory here; JetStream in `adapters.nats`)."""

from adapters.eventstore.memory import InMemoryEventStore
from adapters.eventstore.port import (
    NEW,
    BadEvent,
    ConcurrencyConflict,
    EventStore,
    History,
    NotStored,
    Pipelined,
    Position,
    SequenceGap,
    StoredEvent,
    StoreUnavailable,
)

__all__ = [
    "NEW",
    "BadEvent",
    "ConcurrencyConflict",
    "EventStore",
    "History",
    "InMemoryEventStore",
    "NotStored",
    "Pipelined",
    "Position",
    "SequenceGap",
    "StoreUnavailable",
    "StoredEvent",
]
