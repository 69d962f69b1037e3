"""The event store port: what every implementation offers, and the shared command executor.

`execute` is the one way commands change aggregates: it takes the aggregate's state (from a
small cache of aggregates this process wrote, or by loading), asks the lifecycle to decide,
appends the events with an optimistic check on the aggregate's last stream sequence, and on a
conflict reloads, re-decides and retries a bounded number of times.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import logging
import random
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from domain import lifecycle
from domain.commands import Command, Rejected
from domain.events import DomainEvent, Envelope
from domain.ids import event_subject

log = logging.getLogger("baker.eventstore")
_CAUSED = uuid.UUID("6f1d3c52-7b0e-4c1e-9f43-2d4b8a9e5c11")


@dataclass(frozen=True, slots=True)
class Position:
    """Where an aggregate stands: the stream sequence of its last message, and its version."""

    seq: int = 0
    version: int = 0


NEW = Position()


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    subject: str
    envelope: Envelope
    raw: bytes = b""  # the stored bytes, when the reader had them


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


@dataclass(frozen=True)
class Outcome:
    """What `execute` did: the state after it, what it appended, and any rejection."""

    state: Any
    position: Position
    appended: list[StoredEvent]
    rejected: Rejected | None = None
    attempts: int = 1

    @property
    def changed(self) -> bool:
        return bool(self.appended) and self.rejected is None


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


Planned = tuple[str, str, Command, str | None, str]
"""A command for `execute_each`: aggregate, id, command, trace id, causation id."""


class NotStored(Exception):
    """A pipelined append that stored nothing new (its command goes through `execute`)."""


@dataclass
class StoreStats:
    appended: int = 0
    conflicts: int = 0
    retries: int = 0
    duplicates: int = 0
    bad_events: int = 0
    cache_hits: int = 0
    cache_misses: int = 0


class EventStore(abc.ABC):
    """Append-only, per-aggregate optimistic event log with a global order."""

    def __init__(self, *, cache_size: int = 50_000, max_attempts: int = 16) -> None:
        self.stats = StoreStats()
        self._cache: OrderedDict[tuple[str, str], tuple[Any, Position]] = OrderedDict()
        self._cache_size = cache_size
        self._max_attempts = max_attempts
        # Set by a Brain: refuses appends once it is no longer the leader, and stamps each
        # event with the fencing generation it writes under.
        self.fence: Callable[[str], None] | None = None
        self.generation: int | None = None
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # --- the port -----------------------------------------------------------------------

    @abc.abstractmethod
    async def _append(
        self, aggregate: str, aggregate_id: str, envelopes: list[Envelope], expected: Position
    ) -> tuple[list[StoredEvent], bool]:
        """Store envelopes in order after `expected`; return them and whether any was a
        duplicate of an earlier append (so the cache must not trust them)."""

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

    async def close(self) -> None:
        """Release what the store holds (subscriptions, tasks, cached states)."""
        self._cache.clear()

    # --- shared behaviour ---------------------------------------------------------------

    async def append(
        self,
        aggregate: str,
        aggregate_id: str,
        events: Sequence[DomainEvent],
        expected: Position,
        *,
        trace_id: str | None = None,
        causation_id: str | None = None,
    ) -> list[StoredEvent]:
        """Append `events` if the aggregate is still at `expected`, else `ConcurrencyConflict`.

        With a `causation_id`, event ids derive from it, so re-appending the effect of the same
        cause (a redelivered message) inside the dedupe window stores nothing new.
        """
        event_subject(aggregate, aggregate_id)  # refuses ids that are not subject tokens
        if self.fence is not None:
            self.fence(aggregate)
        envelopes = [
            self._envelope(aggregate, aggregate_id, event, expected, i, trace_id, causation_id)
            for i, event in enumerate(events)
        ]
        try:
            stored, duplicate = await self._append(aggregate, aggregate_id, envelopes, expected)
        except ConcurrencyConflict:
            self.stats.conflicts += 1
            self.forget(aggregate, aggregate_id)
            raise
        self.stats.appended += len(stored)
        self._advance_cache(aggregate, aggregate_id, expected, stored, duplicate)
        return stored

    async def execute(
        self,
        aggregate: str,
        aggregate_id: str,
        command: Command,
        *,
        trace_id: str | None = None,
        causation_id: str | None = None,
        new: bool = False,
    ) -> Outcome:
        """Decide `command` against the aggregate and append the result, retrying conflicts.

        A rejection is appended as `TransitionRejected` when the aggregate exists; for an
        aggregate that does not exist there is no history to attach it to, so it is returned
        (and logged) only. `new=True` says the caller just minted the id: the first attempt
        skips reading the aggregate (if it did exist, the append conflicts and it is read).
        """
        # Commands on one aggregate inside this process queue up instead of racing each other:
        # conflicts are then only with other processes, which bounds the retries.
        lock = self._locks.get((aggregate, aggregate_id))
        if lock is None:
            lock = self._locks[(aggregate, aggregate_id)] = asyncio.Lock()
        async with lock:
            if new and (aggregate, aggregate_id) not in self._cache:
                self._remember((aggregate, aggregate_id), lifecycle.initial_state(aggregate), NEW)
            return await self._execute(aggregate, aggregate_id, command, trace_id, causation_id)

    async def _execute(
        self,
        aggregate: str,
        aggregate_id: str,
        command: Command,
        trace_id: str | None,
        causation_id: str | None,
    ) -> Outcome:
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:  # another process won the race: back off a little, with jitter
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))  # noqa: S311
            state, position = await self.current(aggregate, aggregate_id)
            decision = lifecycle.decide(aggregate, state, command)
            rejected = decision if isinstance(decision, Rejected) else None
            if rejected is not None:
                log.info(
                    "rejected %s on %s %s: %s",
                    rejected.attempted,
                    aggregate,
                    aggregate_id,
                    rejected.reason,
                    extra={"aggregate_id": aggregate_id, "trace_id": trace_id},
                )
                if position.version == 0:
                    return Outcome(state, position, [], rejected, attempt)
                events: list[DomainEvent] = [lifecycle.rejection_event(rejected)]
            else:
                events = list(decision)  # type: ignore[arg-type]
            if not events:
                return Outcome(state, position, [], None, attempt)
            try:
                stored = await self.append(
                    aggregate,
                    aggregate_id,
                    events,
                    position,
                    trace_id=trace_id,
                    causation_id=causation_id,
                )
            except ConcurrencyConflict:
                self.stats.retries += 1
                continue
            # `append` advanced the cached state unless the server reported a duplicate.
            state, position = self._cache.get((aggregate, aggregate_id)) or await self.current(
                aggregate, aggregate_id
            )
            return Outcome(state, position, stored, rejected, attempt)
        raise ConcurrencyConflict(
            f"{aggregate} {aggregate_id}: still conflicting after {self._max_attempts} attempts"
        )

    async def execute_each(self, items: Sequence[Planned]) -> list[Outcome | Exception]:
        """`execute` for commands on distinct aggregates, with their appends pipelined: one
        round trip for all instead of one each. Per item, in order, the `Outcome` or the
        exception `execute` raised. A command whose aggregate is cached and free and whose
        decision is one event takes the pipelined path (no event: done at once); any other,
        or one whose pipelined append conflicted or failed, goes through `execute` (same
        event ids, so a retry of something already stored is recognised as a duplicate).
        Concurrent `execute`s on the same aggregates are safe: the stream's expected-sequence
        check lets only one of two appends at the same position through."""
        keys = {(aggregate, aggregate_id) for aggregate, aggregate_id, *_ in items}
        if len(keys) != len(items):
            raise ValueError("execute_each takes one command per aggregate")
        results: list[Outcome | Exception | None] = [None] * len(items)
        quick: list[tuple[int, tuple[Envelope, Position]]] = []
        for n, item in enumerate(items):
            plan = self._plan(*item)
            if isinstance(plan, Outcome):
                results[n] = plan  # nothing to append (a repeated status, say)
            elif plan is not None:
                quick.append((n, plan))
        if quick:
            batch = [(items[n][0], items[n][1], env, pos) for n, (env, pos) in quick]
            for (n, (_, pos)), got in zip(quick, await self._append_each(batch), strict=True):
                results[n] = await self._planned_outcome(items[n], pos, got)
        rest = [n for n, r in enumerate(results) if r is None]
        if rest:  # mostly none: no gather (a future and its callbacks) for nothing
            slow = await asyncio.gather(
                *(self.execute(a, i, c, trace_id=t, causation_id=k) for a, i, c, t, k in
                  (items[n] for n in rest)),
                return_exceptions=True,
            )  # fmt: skip
            for n, outcome in zip(rest, slow, strict=True):
                if not isinstance(outcome, (Outcome, Exception)):
                    raise outcome  # cancelled: not a result of the command
                results[n] = outcome
        return [r for r in results if r is not None]  # every slot is filled by now

    def _plan(
        self, aggregate: str, aggregate_id: str, command: Command, trace_id: str | None, cause: str
    ) -> tuple[Envelope, Position] | Outcome | None:
        """The one event `command` decides on a cached, unlocked aggregate, the outcome when
        it decides none, or None (for `execute`)."""
        key = (aggregate, aggregate_id)
        cached = self._cache.get(key)
        lock = self._locks.get(key)
        if cached is None or (lock is not None and lock.locked()):
            return None
        state, position = cached
        decision = lifecycle.decide(aggregate, state, command)
        if isinstance(decision, Rejected) or len(decision) > 1:
            return None
        if not decision:
            self.stats.cache_hits += 1
            return Outcome(state, position, [], None, 1)
        try:
            if self.fence is not None:
                self.fence(aggregate)
        except Exception:
            return None  # `execute` raises it for this command
        self.stats.cache_hits += 1
        env = self._envelope(aggregate, aggregate_id, decision[0], position, 0, trace_id, cause)
        return env, position

    def _envelope(
        self,
        aggregate: str,
        aggregate_id: str,
        event: DomainEvent,
        expected: Position,
        index: int,
        trace_id: str | None,
        causation_id: str | None,
    ) -> Envelope:
        """The `index`-th event appended after `expected`, as stored."""
        return Envelope(
            event_id=_event_id(causation_id, aggregate, aggregate_id, index),
            aggregate=aggregate,
            aggregate_id=aggregate_id,
            version=expected.version + index + 1,
            occurred_at=datetime.now(UTC),
            data=event,
            trace_id=trace_id,
            causation_id=causation_id,
            generation=self.generation,
        )

    async def _planned_outcome(
        self, item: Planned, expected: Position, got: StoredEvent | Exception
    ) -> Outcome | None:
        """The outcome of a pipelined append, or None to leave the command to `execute`."""
        aggregate, aggregate_id = item[0], item[1]
        if isinstance(got, Exception):
            if isinstance(got, ConcurrencyConflict):
                self.stats.conflicts += 1
            self.forget(aggregate, aggregate_id)
            return None
        self.stats.appended += 1
        self._advance_cache(aggregate, aggregate_id, expected, [got], False)
        state, position = self._cache.get((aggregate, aggregate_id)) or await self.current(
            aggregate, aggregate_id
        )
        return Outcome(state, position, [got], None, 1)

    async def _append_each(
        self, batch: list[tuple[str, str, Envelope, Position]]
    ) -> list[StoredEvent | Exception]:
        """Store one envelope on each aggregate after its expected position: the stored event
        or why not (a duplicate counts as not), per item. Stores that can pipeline override
        this; here it is one `_append` after the other."""
        out: list[StoredEvent | Exception] = []
        for aggregate, aggregate_id, env, expected in batch:
            try:
                stored, duplicate = await self._append(aggregate, aggregate_id, [env], expected)
            except Exception as exc:
                out.append(exc)
                continue
            out.append(NotStored("a duplicate") if duplicate else stored[0])
        return out

    async def current(self, aggregate: str, aggregate_id: str) -> tuple[Any, Position]:
        """The aggregate's state and position, from the cache or by loading it."""
        key = (aggregate, aggregate_id)
        cached = self._cache.get(key)
        if cached is not None:
            self.stats.cache_hits += 1
            self._cache.move_to_end(key)
            return cached
        self.stats.cache_misses += 1
        history = await self.load(aggregate, aggregate_id)
        self._remember(key, history.state, history.position)
        return history.state, history.position

    def forget(self, aggregate: str, aggregate_id: str) -> None:
        """Drop a cached aggregate so the next use reloads it."""
        self._cache.pop((aggregate, aggregate_id), None)

    def _remember(self, key: tuple[str, str], state: Any, position: Position) -> None:
        self._cache[key] = (state, position)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _advance_cache(
        self,
        aggregate: str,
        aggregate_id: str,
        expected: Position,
        stored: list[StoredEvent],
        duplicate: bool,
    ) -> None:
        key = (aggregate, aggregate_id)
        cached = self._cache.get(key)
        if duplicate or cached is None or cached[1] != expected or not stored:
            self._cache.pop(key, None)
            if duplicate:
                self.stats.duplicates += 1
            return
        state = cached[0]
        for item in stored:
            state = lifecycle.evolve(aggregate, state, item.envelope.data)
        last = stored[-1]
        self._remember(key, state, Position(last.seq, last.envelope.version))

    def _count_bad(self, bad: BadEvent) -> None:
        self.stats.bad_events += 1
        log.error(
            "skipped unreadable stored event seq=%d subject=%s: %s",
            bad.seq,
            bad.subject,
            bad.error,
            extra={"seq": bad.seq, "subject": bad.subject},
        )


def _event_id(causation_id: str | None, aggregate: str, aggregate_id: str, index: int) -> str:
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


def fold_history(
    aggregate: str, aggregate_id: str, items: list[StoredEvent], bad: list[BadEvent]
) -> History:
    """Fold loaded events into a `History`; the position counts unreadable messages too, so an
    append after them is not refused for a sequence the reader skipped."""
    state = lifecycle.fold(aggregate, (item.envelope.data for item in items))
    last_seq = max([i.seq for i in items] + [b.seq for b in bad], default=0)
    version = items[-1].envelope.version if items else 0
    return History(aggregate, aggregate_id, state, Position(last_seq, version), items, bad)
