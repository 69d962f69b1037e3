"""In-memory event store: the same contract as the JetStream one, for unit tests and fakes.

Messages are kept as encoded bytes with a global sequence, so decoding, bad-message handling
and the optimistic check behave exactly as they do on JetStream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence

from adapters.eventstore.port import (
    BadEvent,
    ConcurrencyConflict,
    EventStore,
    History,
    Position,
    StoredEvent,
    fold_history,
)
from domain.events import Envelope, EventDecodeError, decode_event
from domain.ids import event_subject


class MemoryLog:
    """The stored messages; several store instances (writers) may share one."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []  # index + 1 is the stream sequence
        self.last: dict[str, int] = {}  # subject -> last seq
        self.by_subject: dict[str, list[int]] = {}
        self.msg_ids: dict[str, int] = {}
        self.changed = asyncio.Condition()


class InMemoryEventStore(EventStore):
    def __init__(
        self, *, prefix: str = "baker.events", log: MemoryLog | None = None, chain: bool = True
    ) -> None:
        super().__init__(chain=chain)
        self._prefix = prefix
        self.log = log or MemoryLog()
        self._log = self.log.messages
        self._last = self.log.last
        self._by_subject = self.log.by_subject
        self._msg_ids = self.log.msg_ids
        self._changed = self.log.changed

    def sharing(self) -> InMemoryEventStore:
        """Another writer on the same log (as another process would be)."""
        return InMemoryEventStore(prefix=self._prefix, log=self.log, chain=self.chain)

    async def append(
        self,
        aggregate: str,
        aggregate_id: str,
        envelopes: Sequence[Envelope],
        expected: Position,
    ) -> tuple[list[StoredEvent], bool]:
        subject = event_subject(aggregate, aggregate_id, self._prefix)
        stored: list[StoredEvent] = []
        duplicate = False
        last = expected.seq
        prev_hash = expected.hash
        for given in envelopes:
            seq = self._msg_ids.get(given.event_id)
            if seq is not None:  # the same message again: like JetStream's dedupe window
                duplicate = True
                stored.append(StoredEvent(seq, subject, decode_event(self._log[seq - 1][1])))
                last, prev_hash = seq, stored[-1].envelope.hash or ""
                continue
            if self._last.get(subject, 0) != last:
                raise ConcurrencyConflict(
                    f"{subject}: expected last sequence {last}, is {self._last.get(subject, 0)}"
                )
            env, data = self.encode(given, prev_hash)
            last = self.put_raw(subject, data)
            self._msg_ids[env.event_id] = last
            stored.append(StoredEvent(last, subject, env))
            prev_hash = env.hash or ""
        async with self._changed:
            self._changed.notify_all()
        return stored, duplicate

    def put_raw(self, subject: str, data: bytes) -> int:
        """Store raw bytes on a subject, bypassing all checks (tests use it for bad data)."""
        self._log.append((subject, data))
        seq = len(self._log)
        self._last[subject] = seq
        self._by_subject.setdefault(subject, []).append(seq)
        return seq

    async def load(self, aggregate: str, aggregate_id: str) -> History:
        subject = event_subject(aggregate, aggregate_id, self._prefix)
        items: list[StoredEvent] = []
        bad: list[BadEvent] = []
        for seq in self._by_subject.get(subject, []):
            item = self._read(seq)
            if isinstance(item, BadEvent):
                self._count_bad(item)
                bad.append(item)
            else:
                items.append(item)
        return fold_history(aggregate, aggregate_id, items, bad)

    def _read(self, seq: int) -> StoredEvent | BadEvent:
        subject, data = self._log[seq - 1]
        try:
            return StoredEvent(seq, subject, decode_event(data), data)
        except EventDecodeError as exc:
            return BadEvent(seq, subject, str(exc), data)

    async def read_all(
        self, from_seq: int = 1, *, until_seq: int | None = None, include_bad: bool = False
    ) -> AsyncIterator[StoredEvent | BadEvent]:
        end = len(self._log) if until_seq is None else min(until_seq, len(self._log))
        for seq in range(max(from_seq, 1), end + 1):
            item = self._read(seq)
            if isinstance(item, BadEvent):
                self._count_bad(item)
                if not include_bad:
                    continue
            yield item
            await asyncio.sleep(0)  # let other tasks run, as a network read would

    def _holds(self, seq: int) -> Callable[[], bool]:
        """A condition: the log holds sequence `seq`."""
        return lambda: len(self._log) >= seq

    async def tail(
        self, from_seq: int = 1, *, include_bad: bool = False
    ) -> AsyncIterator[StoredEvent | BadEvent]:
        seq = max(from_seq, 1)
        while True:
            async with self._changed:
                await self._changed.wait_for(self._holds(seq))
            end = len(self._log)
            async for item in self.read_all(seq, until_seq=end, include_bad=include_bad):
                yield item
            seq = end + 1

    async def tail_batches(
        self, from_seq: int, *, max_batch: int = 1000, max_wait: float = 0.01, idle: float = 1.0
    ) -> AsyncGenerator[list[StoredEvent | BadEvent], None]:
        seq = max(from_seq, 1)
        while True:
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait_for(self._holds(seq)), idle)
                except TimeoutError:
                    yield []
                    continue
            if max_wait > 0 and len(self._log) - seq + 1 < max_batch:
                # A batch closes at `max_batch` events or `max_wait` after its first one.
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._changed.wait_for(self._holds(seq + max_batch - 1)), max_wait
                        )
            end = min(len(self._log), seq + max_batch - 1)
            batch = [self._read(s) for s in range(seq, end + 1)]
            for item in batch:
                if isinstance(item, BadEvent):
                    self._count_bad(item)
            seq = end + 1
            yield batch

    async def head_seq(self) -> int:
        return len(self._log)
