"""Event store port and implementations (in-memory here; JetStream in `adapters.nats`)."""

from adapters.eventstore.memory import InMemoryEventStore
from adapters.eventstore.port import (
    NEW,
    BadEvent,
    ConcurrencyConflict,
    EventStore,
    History,
    Outcome,
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
    "Outcome",
    "Position",
    "SequenceGap",
    "StoreUnavailable",
    "StoredEvent",
]
