"""The event store on JetStream: one subject per aggregate in `BAKER_EVENTS`.

Appends carry `Nats-Msg-Id` (dedupe) and `Nats-Expected-Last-Subject-Sequence` (optimistic
concurrency on the aggregate's last stream sequence). A publish that gets no answer is retried
with the same message id, so a network retry never stores a second copy. An aggregate is loaded
with batch direct gets (up to `LOAD_BATCH` events a request, instead of one request each), and
the log is followed by an `OrderedReader` (an ephemeral pull consumer without acks).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from adapters.eventstore.port import (
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
    fold_history,
)
from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.errors import TRANSIENT, ConnectionClosed
from adapters.nats.message import JetStreamError, Msg, parse_pub_ack
from adapters.nats.publisher import JetStreamPublisher, PublishUnavailable, abandon
from adapters.nats.reader import OrderedReader, Read
from adapters.nats.streams import EVENTS_STREAM
from domain.events import Envelope, EventDecodeError, decode_event
from domain.ids import event_subject

log = logging.getLogger("baker.eventstore")
WRONG_LAST_SEQUENCE = 10071
LOAD_BATCH = 1024  # events per batch direct get when loading an aggregate
FOLLOW_BATCH = 1000  # messages per pull when reading the log through
T = TypeVar("T")


class AppendRefused(Exception):
    """JetStream refused an append for a reason other than a concurrency conflict."""


def _headers(env: Envelope, last_seq: int) -> dict[str, str]:
    """Dedupe by event id, and only after the aggregate's last stored sequence."""
    return {
        "Nats-Msg-Id": env.event_id,
        "Nats-Expected-Last-Subject-Sequence": str(last_seq),
        "Baker-Event-Type": env.type,
    }


class JetStreamEventStore(EventStore):
    def __init__(
        self,
        client: Client,
        *,
        stream: str = EVENTS_STREAM,
        prefix: str = "baker.events",
        request_timeout: float = 2.0,
        retry_for: float = 30.0,
        chain: bool = True,
    ) -> None:
        super().__init__(chain=chain)
        self.client = client
        self._stream = stream
        self._prefix = prefix
        self._timeout = request_timeout
        self._retry_for = retry_for
        self.pending = 0  # messages after the last one `tail_batches` delivered (the lag)
        self._publisher = JetStreamPublisher(
            client, request_timeout=request_timeout, retry_for=retry_for, on_retry=self._retried
        )

    def _retried(self) -> None:
        self.stats.retries += 1

    # --- writing ------------------------------------------------------------------------

    async def append(
        self,
        aggregate: str,
        aggregate_id: str,
        envelopes: Sequence[Envelope],
        expected: Position,
    ) -> tuple[list[StoredEvent], bool]:
        subject = event_subject(aggregate, aggregate_id, self._prefix)
        stored: list[StoredEvent] = []
        any_duplicate = False
        last = expected.seq
        prev_hash = expected.hash
        for given in envelopes:
            env, data = self.encode(given, prev_hash)
            seq, duplicate = await self._publish(subject, data, _headers(env, last))
            if duplicate:
                any_duplicate = True
                item = await self._get(seq)
                if isinstance(item, BadEvent):
                    raise AppendRefused(f"{subject}: duplicate of unreadable message {seq}")
                stored.append(item)
            else:
                stored.append(StoredEvent(seq, subject, env))
            last, prev_hash = seq, stored[-1].envelope.hash or ""
        return stored, any_duplicate

    async def append_each(self, batch: Sequence[Pipelined]) -> list[StoredEvent | Exception]:
        """All the appends on the wire before the first answer is awaited. No retries here:
        whatever did not come back stored is left to the caller (the executor retries it one
        by one, with the same message ids)."""
        client = self.client
        sent: list[tuple[str, Envelope, asyncio.Future[Msg] | Exception]] = []
        try:
            for aggregate, aggregate_id, env, expected in batch:
                subject = event_subject(aggregate, aggregate_id, self._prefix)
                try:
                    if client.congested:  # the socket is behind: let it drain first
                        await client.writable()
                    sealed, data = self.encode(env, expected.hash)
                    headers = _headers(sealed, expected.seq)
                    sent.append((subject, sealed, self._publisher.send(subject, data, headers)))
                except Exception as exc:
                    sent.append((subject, env, exc))
            return [await _stored(subject, answer, env) for subject, env, answer in sent]
        except BaseException:  # answers not taken (we were cancelled) are forgotten
            abandon([answer for _, _, answer in sent if isinstance(answer, asyncio.Future)])
            raise

    async def _publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, bool]:
        """Publish an event; a wrong last sequence is a `ConcurrencyConflict`."""
        try:
            ack = await self._publisher.publish(subject, payload, headers)
        except PublishUnavailable as exc:
            raise StoreUnavailable(str(exc)) from exc
        except JetStreamError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise AppendRefused(str(exc)) from exc
            # The server checks the expected sequence before the message id (2.11 on), so the
            # same event stored before (an earlier try whose answer was lost, or the same cause
            # appended again) is refused as a conflict: it is then the subject's last message.
            last_seq = await self._last_with_id(subject, headers["Nats-Msg-Id"])
            if last_seq is not None:
                return last_seq, True
            raise ConcurrencyConflict(f"{subject}: {exc.description}") from exc
        return ack.seq, ack.duplicate

    async def _last_with_id(self, subject: str, msg_id: str) -> int | None:
        """The sequence of the subject's last message if it carries `msg_id`, else None."""
        query = {"last_by_subj": subject}
        last = await self._read(subject, self._direct_get, query)
        if last is not None and last.headers.get("Nats-Msg-Id") == msg_id:
            return int(last.headers["Nats-Sequence"])
        return None

    async def _direct_get(self, query: dict[str, object]) -> Msg | None:
        return await jsapi.direct_get(self.client, self._stream, query)

    async def _read(self, what: str, call: Callable[..., Awaitable[T]], *args: object) -> T:
        """`call(*args)`, sent again while the server does not answer, up to `retry_for`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for
        while True:
            try:
                return await call(*args)
            except TRANSIENT as exc:
                if loop.time() >= deadline:
                    raise StoreUnavailable(f"{what}: no answer ({exc!r})") from exc
                self.stats.retries += 1
                await asyncio.sleep(0.2)
            except ConnectionClosed as exc:
                raise StoreUnavailable(f"{what}: the NATS connection is closed") from exc

    # --- reading ------------------------------------------------------------------------

    async def load(self, aggregate: str, aggregate_id: str) -> History:
        """The aggregate's subject read with batch direct gets (`next_by_subj`)."""
        subject = event_subject(aggregate, aggregate_id, self._prefix)
        batch = functools.partial(jsapi.direct_batch, self.client, self._stream)
        items: list[StoredEvent] = []
        bad: list[BadEvent] = []
        seq = 1
        while True:
            query = {"seq": seq, "next_by_subj": subject, "batch": LOAD_BATCH}
            msgs, more = await self._read(subject, batch, query, self._timeout)
            for msg in msgs:
                seq = int(msg.headers["Nats-Sequence"])
                item = _decode(seq, subject, msg.data)
                if isinstance(item, BadEvent):
                    self._count_bad(item)
                    bad.append(item)
                else:
                    items.append(item)
            if not msgs or not more:
                return fold_history(aggregate, aggregate_id, items, bad)
            seq += 1

    async def _get(self, seq: int) -> StoredEvent | BadEvent:
        msg = await self._read(f"{self._stream} seq {seq}", self._direct_get, {"seq": seq})
        if msg is None:
            raise AppendRefused(f"{self._stream}: message {seq} is gone")
        return _decode(seq, msg.headers.get("Nats-Subject", ""), msg.data)

    async def head_seq(self) -> int:
        """The stream's last sequence; asked again while the server does not answer (a
        leader election on a cluster), up to `retry_for`."""
        info = await self._read(self._stream, jsapi.stream_info, self.client, self._stream)
        return int(info["state"]["last_seq"])

    async def read_all(
        self, from_seq: int = 1, *, until_seq: int | None = None, include_bad: bool = False
    ) -> AsyncIterator[StoredEvent | BadEvent]:
        head = await self.head_seq()
        end = head if until_seq is None else min(until_seq, head)
        if end < max(from_seq, 1):
            return
        async for item in self._follow(from_seq, end, include_bad):
            yield item

    async def tail(
        self, from_seq: int = 1, *, include_bad: bool = False
    ) -> AsyncIterator[StoredEvent | BadEvent]:
        async for item in self._follow(from_seq, None, include_bad):
            yield item

    async def _follow(
        self, from_seq: int, end: int | None, include_bad: bool
    ) -> AsyncIterator[StoredEvent | BadEvent]:
        """The log from `from_seq` in order, to `end` (or for ever)."""
        reader = self._reader(from_seq, f"{self._prefix}.>")
        try:
            while True:
                for seq, pending, msg in await reader.fetch(FOLLOW_BATCH, wait=5.0):
                    item = _decode(seq, msg.subject, msg.data)
                    if isinstance(item, BadEvent):
                        self._count_bad(item)
                    if include_bad or isinstance(item, StoredEvent):
                        yield item
                    # Nothing pending: the rest up to `end` is not on our subjects.
                    if end is not None and (seq >= end or not pending):
                        return
        finally:
            await reader.close()

    def _reader(self, from_seq: int, subjects: str | None = None) -> OrderedReader:
        return OrderedReader(
            self.client,
            self._stream,
            start_seq=max(from_seq, 1),
            filter_subject=subjects,
            retry_for=self._retry_for,
        )

    async def tail_batches(
        self, from_seq: int, *, max_batch: int = 1000, max_wait: float = 0.01, idle: float = 1.0
    ) -> AsyncGenerator[list[StoredEvent | BadEvent], None]:
        """Batches from an ephemeral pull consumer: we only ever ask for what we can take, so
        nothing piles up and nothing is dropped. A batch is closed when it holds `max_batch`
        events, or `max_wait` seconds after its first one arrived (0: what is there at once)."""
        loop = asyncio.get_running_loop()
        expected = max(from_seq, 1)
        reader = self._reader(expected)
        try:
            while True:
                batch: list[StoredEvent | BadEvent] = []
                deadline: float | None = None
                while len(batch) < max_batch:
                    wait = idle if deadline is None else deadline - loop.time()
                    if wait < 0.001:  # not worth another round trip
                        break
                    got = await reader.fetch(max_batch - len(batch), wait=wait)
                    if not got:
                        break
                    if deadline is None:
                        deadline = loop.time() + max_wait
                    expected, later = self._take(got, expected, batch)
                    if later is None:
                        continue
                    if not await self._exists(expected):
                        raise SequenceGap(expected, later)
                    # The reader hands out everything it was sent; should a message still
                    # be missing, read again from it rather than skip it.
                    log.warning("message %d of %s skipped by the reader: reading again",
                                expected, self._stream)  # fmt: skip
                    await reader.close()
                    reader = self._reader(expected)
                    break
                yield batch
        finally:
            await reader.close()

    def _take(
        self, got: list[Read], expected: int, batch: list[StoredEvent | BadEvent]
    ) -> tuple[int, int | None]:
        """Append the messages that continue the log to `batch`. Returns the next sequence
        expected and, if a later one showed up instead, that sequence."""
        for seq, pending, msg in got:
            if seq < expected:
                continue  # seen before the reader was made again
            if seq > expected:
                return expected, seq
            expected = seq + 1
            self.pending = pending
            item = _decode(seq, msg.subject, msg.data)
            if isinstance(item, BadEvent):
                self._count_bad(item)
            batch.append(item)
        return expected, None

    async def _exists(self, seq: int) -> bool:
        found = await self._read(
            self._stream, jsapi.get_msg, self.client, self._stream, {"seq": seq}
        )
        return found is not None


async def _stored(
    subject: str, waiting: asyncio.Future[Msg] | Exception, env: Envelope
) -> StoredEvent | Exception:
    """What became of one pipelined append."""
    if isinstance(waiting, Exception):
        return waiting
    try:
        ack = parse_pub_ack(subject, await waiting)
    except JetStreamError as exc:
        if exc.err_code == WRONG_LAST_SEQUENCE:
            return ConcurrencyConflict(f"{subject}: {exc.description}")
        return AppendRefused(str(exc))
    except Exception as exc:
        return exc
    return NotStored("a duplicate") if ack.duplicate else StoredEvent(ack.seq, subject, env)


def _decode(seq: int, subject: str, data: bytes) -> StoredEvent | BadEvent:
    try:
        return StoredEvent(seq, subject, decode_event(data), data)
    except EventDecodeError as exc:
        return BadEvent(seq, subject, str(exc), data)
