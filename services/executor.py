"""The command executor: the one way commands change aggregates.

`execute` takes the aggregate's state (from a small cache of aggregates this process wrote, or
by loading it from the event store), asks the lifecycle to decide, appends the events with an
optimistic check on the aggregate's last stream sequence, and on a conflict reloads, re-decides
and retries a bounded number of times. Every append first passes the fence it was built with
(a Brain's leadership: only the leader changes jobs and tasks), which also gives the fencing
generation stamped on each event.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adapters.eventstore import (
    NEW,
    ConcurrencyConflict,
    EventStore,
    Position,
    StoredEvent,
)
from domain import lifecycle
from domain.commands import Command, Rejected
from domain.events import DomainEvent, Envelope
from domain.ids import event_subject
from services.envelopes import envelope

log = logging.getLogger("baker.eventstore")


class Fence(Protocol):
    """Who may write: a Brain's leadership, or nothing (every process may)."""

    def check(self, aggregate: str) -> int | None:
        """Raise (`Fenced`) if this process may not append to `aggregate` now; else the
        fencing generation to stamp on the events (None: no generation)."""
        ...


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


Planned = tuple[str, str, Command, str | None, str]
"""A command for `execute_each`: aggregate, id, command, trace id, causation id."""


@dataclass
class ExecutorStats:
    appended: int = 0
    conflicts: int = 0
    retries: int = 0
    duplicates: int = 0
    cache_hits: int = 0
    cache_misses: int = 0


class CommandExecutor:
    """Decides commands and appends their events to `store`, behind `fence` (if any)."""

    def __init__(
        self,
        store: EventStore,
        *,
        fence: Fence | None = None,
        cache_size: int = 50_000,
        max_attempts: int = 16,
    ) -> None:
        self.store = store  # the log it writes to (readers use it directly)
        self.stats = ExecutorStats()
        self._fence = fence
        self._cache: OrderedDict[tuple[str, str], tuple[Any, Position]] = OrderedDict()
        self._cache_size = cache_size
        self._max_attempts = max_attempts
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

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
        generation = self._fence.check(aggregate) if self._fence is not None else None
        envelopes = [
            envelope(aggregate, aggregate_id, event, expected, i, trace_id, causation_id,
                     generation)
            for i, event in enumerate(events)
        ]  # fmt: skip
        try:
            stored, duplicate = await self.store.append(
                aggregate, aggregate_id, envelopes, expected
            )
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
            for (n, (_, pos)), got in zip(quick, await self.store.append_each(batch), strict=True):
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
        generation = None
        if self._fence is not None:
            try:
                generation = self._fence.check(aggregate)
            except Exception:
                return None  # `execute` raises it for this command
        self.stats.cache_hits += 1
        env = envelope(
            aggregate, aggregate_id, decision[0], position, 0, trace_id, cause, generation
        )
        return env, position

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

    async def current(self, aggregate: str, aggregate_id: str) -> tuple[Any, Position]:
        """The aggregate's state and position, from the cache or by loading it."""
        key = (aggregate, aggregate_id)
        cached = self._cache.get(key)
        if cached is not None:
            self.stats.cache_hits += 1
            self._cache.move_to_end(key)
            return cached
        self.stats.cache_misses += 1
        history = await self.store.load(aggregate, aggregate_id)
        self._remember(key, history.state, history.position)
        return history.state, history.position

    def assume_new(self, aggregate: str, aggregate_id: str) -> None:
        """The caller just minted this id: take the aggregate as new without reading it, so
        `execute_each` can pipeline its first append (if it did exist, the append conflicts
        and `execute` reads it), as `execute(new=True)` does for one command."""
        key = (aggregate, aggregate_id)
        if key not in self._cache:
            self._remember(key, lifecycle.initial_state(aggregate), NEW)

    def forget(self, aggregate: str, aggregate_id: str) -> None:
        """Drop a cached aggregate so the next use reloads it."""
        self._cache.pop((aggregate, aggregate_id), None)

    async def close(self) -> None:
        """Drop the cached states (the store is closed by whoever opened it)."""
        self._cache.clear()

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
        # The last event's hash is the next one's `prevHash`: no read needed to chain it.
        self._remember(key, state, stored[-1].position)
