"""The event store port: an append-only, per-aggregate optimistic log with a global order.

This is storage only (like pyeventsourcing's recorders): envelopes in, stored events out, with
an optimistic check on the aggregate's last stream sequence. Deciding commands, retrying
conflicts, caching states and fencing are the command executor's (`services.executor`).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from domain import lifecycle
from domain.events import Envelope, encode_event, seal

log = logging.getLogger("baker.eventstore")


@dataclass(frozen=True, slots=True)
class Position:
    """Where an aggregate stands: the stream sequence of its last message, its version, and
    the `hash` of its last event ("" for none, or one stored before the hash chain): what the
    next event's `prevHash` is. An append is conditional on `seq`, so a `hash` taken with a
    stale `seq` never reaches the log."""

    seq: int = 0
    version: int = 0
    hash: str = ""


NEW = Position()


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    subject: str
    envelope: Envelope
    raw: bytes = b""  # the stored bytes, when the reader had them

    @property
    def position(self) -> Position:
        """Where its aggregate stands once this event is stored."""
        return Position(self.seq, self.envelope.version, self.envelope.hash or "")


@dataclass(frozen=True, slots=True)
class BadEvent:
    """A stored message that could not be read as an event; readers skip and count it."""

    seq: int
    subject: str
    error: str
    raw: bytes


@dataclass(frozen=True)
class History:
    aggregate: str
    aggregate_id: str
    state: Any
    position: Position
    events: list[StoredEvent]
    bad: list[BadEvent] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.position.seq > 0


class ConcurrencyConflict(Exception):
    """Another writer appended to the aggregate since `expected` was read."""


class StoreUnavailable(Exception):
    """The store could not be reached within the retry budget."""


class SequenceGap(Exception):
    """A reader expected one stream sequence and got a later one: events are missing."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(
            f"sequence gap in the event log: expected {expected}, got {got} "
            f"({got - expected} events missing); stopping rather than skipping them"
        )
        self.expected = expected
        self.got = got


class NotStored(Exception):
    """A pipelined append that stored nothing new (a duplicate of an earlier append)."""


Pipelined = tuple[str, str, Envelope, Position]
"""One envelope for `append_each`: aggregate, id, envelope, expected position."""


@dataclass
class StoreStats:
    retries: int = 0  # requests sent again after no answer (the network, a restart)
    bad_events: int = 0  # stored messages that could not be read as events


class EventStore(abc.ABC):
    """Append-only, per-aggregate optimistic event log with a global order."""

    def __init__(self, *, chain: bool = True) -> None:
        self.stats = StoreStats()
        # Off only to measure what the hash chain costs (`python -m bench event-store`).
        self.chain = chain

    def encode(self, env: Envelope, prev_hash: str) -> tuple[Envelope, bytes]:
        """`env` as stored after an event whose hash is `prev_hash`, and its bytes: sealed
        into its aggregate's hash chain (`domain.events.chain`)."""
        if self.chain:
            return seal(env, prev_hash)
        return env, encode_event(env)

    @abc.abstractmethod
    async def append(
        self,
        aggregate: str,
        aggregate_id: str,
        envelopes: Sequence[Envelope],
        expected: Position,
    ) -> tuple[list[StoredEvent], bool]:
        """Store envelopes in order after `expected`, each sealed into the aggregate's hash
        chain after `expected.hash`; return them as stored and whether any was a duplicate of
        an earlier append (same event id: what is returned is the stored one).
        `ConcurrencyConflict` if the aggregate moved past `expected`; `InvalidId` for ids that
        are not subject tokens."""

    async def append_each(self, batch: Sequence[Pipelined]) -> list[StoredEvent | Exception]:
        """Store one envelope on each aggregate after its expected position: per item, the
        stored event or why not (a duplicate is `NotStored`). Stores that can pipeline
        override this; here it is one `append` after the other."""
        out: list[StoredEvent | Exception] = []
        for aggregate, aggregate_id, env, expected in batch:
            try:
                stored, duplicate = await self.append(aggregate, aggregate_id, [env], expected)
            except Exception as exc:
                out.append(exc)
                continue
            out.append(NotStored("a duplicate") if duplicate else stored[0])
        return out

    @abc.abstractmethod
    async def load(self, aggregate: str, aggregate_id: str) -> History:
        """Every event of one aggregate, its folded state and position."""

    @abc.abstractmethod
    def read_all(
        self, from_seq: int = 1, *, until_seq: int | None = None, include_bad: bool = False
    ) -> AsyncIterator[StoredEvent | BadEvent]:
        """Events of all aggregates in stream order, up to the head at call time."""

    @abc.abstractmethod
    def tail(
        self, from_seq: int = 1, *, include_bad: bool = False
    ) -> AsyncIterator[StoredEvent | BadEvent]:
        """Like `read_all`, then keeps following new events until the caller stops."""

    @abc.abstractmethod
    def tail_batches(
        self, from_seq: int, *, max_batch: int = 1000, max_wait: float = 0.01, idle: float = 1.0
    ) -> AsyncGenerator[list[StoredEvent | BadEvent], None]:
        """Follow the log from `from_seq` in batches (bad messages included, in order): a batch
        is what arrives within `max_wait` of its first message, at most `max_batch`; after
        `idle` seconds without any, an empty batch. `SequenceGap` if a sequence is missing."""

    @abc.abstractmethod
    async def head_seq(self) -> int:
        """The stream sequence of the newest stored message (0 when empty)."""

    async def close(self) -> None:  # noqa: B027 - stores with nothing to release keep it
        """Release what the store holds (subscriptions, tasks)."""

    def _count_bad(self, bad: BadEvent) -> None:
        self.stats.bad_events += 1
        log.error(
            "skipped unreadable stored event seq=%d subject=%s: %s",
            bad.seq,
            bad.subject,
            bad.error,
            extra={"seq": bad.seq, "subject": bad.subject},
        )


def fold_history(
    aggregate: str, aggregate_id: str, items: list[StoredEvent], bad: list[BadEvent]
) -> History:
    """Fold loaded events into a `History`; the position counts unreadable messages too, so an
    append after them is not refused for a sequence the reader skipped."""
    state = lifecycle.fold(aggregate, (item.envelope.data for item in items))
    last_seq = max([i.seq for i in items] + [b.seq for b in bad], default=0)
    version = items[-1].envelope.version if items else 0
    head = (items[-1].envelope.hash or "") if items and items[-1].seq == last_seq else ""
    if bad and bad[-1].seq == last_seq:  # the chain goes on from the unreadable event
        head = _raw_hash(bad[-1].raw)
    return History(aggregate, aggregate_id, state, Position(last_seq, version, head), items, bad)


def _raw_hash(raw: bytes) -> str:
    """The `hash` of a stored message that could not be read as an event, if it has one (an
    event of a newer schema, say)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    value = doc.get("hash") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""
