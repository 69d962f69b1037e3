"""The event store on JetStream: one subject per aggregate in `BAKER_EVENTS`.

Appends carry `Nats-Msg-Id` (dedupe) and `Nats-Expected-Last-Subject-Sequence` (optimistic
concurrency on the aggregate's last stream sequence). A publish that gets no answer is retried
with the same message id, so a network retry never stores a second copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

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
from adapters.nats.pull import PullSubscriber, stream_position
from adapters.nats.requests import (
    TRANSIENT,
    JetStreamPublisher,
    PublishRefused,
    PublishUnavailable,
    Sent,
    pub_ack,
)
from adapters.nats.streams import EVENTS_STREAM
from domain.events import Envelope, EventDecodeError, decode_event, encode_event
from domain.ids import event_subject

log = logging.getLogger("baker.eventstore")
WRONG_LAST_SEQUENCE = 10071


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
        nc: NATS,
        *,
        stream: str = EVENTS_STREAM,
        prefix: str = "baker.events",
        request_timeout: float = 2.0,
        retry_for: float = 30.0,
    ) -> None:
        super().__init__()
        self._nc = nc
        self._js = nc.jetstream(timeout=request_timeout)
        self._stream = stream
        self._prefix = prefix
        self._timeout = request_timeout
        self._retry_for = retry_for
        self.pending = 0  # messages after the last one `tail_batches` delivered (the lag)
        self._publisher = JetStreamPublisher(
            nc, request_timeout=request_timeout, retry_for=retry_for, on_retry=self._count_retry
        )

    def _count_retry(self) -> None:
        self.stats.retries += 1

    async def close(self) -> None:
        """Stop the reply subscription and its sweeper (the connection stays open)."""
        await self._publisher.close()

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
        for env in envelopes:
            seq, duplicate = await self._publish(subject, encode_event(env), _headers(env, last))
            if duplicate:
                any_duplicate = True
                item = await self._get(seq)
                if isinstance(item, BadEvent):
                    raise AppendRefused(f"{subject}: duplicate of unreadable message {seq}")
                stored.append(item)
            else:
                stored.append(StoredEvent(seq, subject, env))
            last = seq
        return stored, any_duplicate

    async def append_each(self, batch: Sequence[Pipelined]) -> list[StoredEvent | Exception]:
        """All the appends on the wire before the first answer is awaited. No retries here:
        whatever did not come back stored is left to the caller (the executor retries it one
        by one, with the same message ids)."""
        sent: list[tuple[str, Sent | Exception]] = []
        try:
            for aggregate, aggregate_id, env, expected in batch:
                subject = event_subject(aggregate, aggregate_id, self._prefix)
                try:
                    waiting = await self._publisher.mux.send(
                        subject, encode_event(env), _headers(env, expected.seq), self._timeout
                    )
                except Exception as exc:
                    sent.append((subject, exc))
                else:
                    sent.append((subject, waiting))
            return [
                await self._stored(subject, answer, env)
                for (subject, answer), (_, _, env, _) in zip(sent, batch, strict=True)
            ]
        finally:  # answers not taken (we were cancelled) are not left to the sweeper
            for _, left in sent:
                if isinstance(left, Sent):
                    self._publisher.mux.abandon(left)

    async def _stored(
        self, subject: str, waiting: Sent | Exception, env: Envelope
    ) -> StoredEvent | Exception:
        if isinstance(waiting, Exception):
            return waiting
        try:
            seq, duplicate = pub_ack(subject, await self._publisher.mux.answer(waiting))
        except PublishRefused as exc:
            if exc.code == WRONG_LAST_SEQUENCE:
                return ConcurrencyConflict(f"{subject}: {exc.description}")
            return AppendRefused(str(exc))
        except Exception as exc:
            return exc
        return NotStored("a duplicate") if duplicate else StoredEvent(seq, subject, env)

    async def _publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, bool]:
        """Publish an event; a wrong last sequence is a `ConcurrencyConflict`."""
        try:
            seq, duplicate = await self._publisher.publish(subject, payload, headers)
        except PublishUnavailable as exc:
            raise StoreUnavailable(str(exc)) from exc
        except PublishRefused as exc:
            if exc.code != WRONG_LAST_SEQUENCE:
                raise AppendRefused(str(exc)) from exc
            # The server checks the expected sequence before the message id (2.11 on), so the
            # same event stored before (an earlier try whose answer was lost, or the same cause
            # appended again) is refused as a conflict: it is then the subject's last message.
            last_seq = await self._last_with_id(subject, headers["Nats-Msg-Id"])
            if last_seq is not None:
                return last_seq, True
            raise ConcurrencyConflict(f"{subject}: {exc.description}") from exc
        return seq, duplicate

    async def _last_with_id(self, subject: str, msg_id: str) -> int | None:
        """The sequence of the subject's last message if it carries `msg_id`, else None."""
        try:
            last = await self._js.get_last_msg(self._stream, subject)
        except NotFoundError:
            return None
        if last.headers and last.headers.get("Nats-Msg-Id") == msg_id:
            return int(last.seq or 0)
        return None

    # --- reading ------------------------------------------------------------------------

    async def load(self, aggregate: str, aggregate_id: str) -> History:
        """Walk the aggregate's subject with direct gets (`next_by_subj`)."""
        subject = event_subject(aggregate, aggregate_id, self._prefix)
        request = f"$JS.API.DIRECT.GET.{self._stream}"
        items: list[StoredEvent] = []
        bad: list[BadEvent] = []
        seq = 1
        while True:
            body = json.dumps({"seq": seq, "next_by_subj": subject}).encode()
            msg = await self._request_with_retry(request, body)
            headers = msg.headers or {}
            if not msg.data and headers.get("Status") == "404":
                break
            if headers.get("Status"):
                raise StoreUnavailable(f"direct get on {subject}: status {headers['Status']}")
            seq = int(headers["Nats-Sequence"])
            item = _decode(seq, subject, msg.data)
            if isinstance(item, BadEvent):
                self._count_bad(item)
                bad.append(item)
            else:
                items.append(item)
            seq += 1
        return fold_history(aggregate, aggregate_id, items, bad)

    async def _request_with_retry(self, subject: str, body: bytes) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for
        while True:
            try:
                return await self._nc.request(subject, body, timeout=self._timeout)
            except TRANSIENT as exc:
                if loop.time() >= deadline:
                    raise StoreUnavailable(f"{subject}: no answer ({exc!r})") from exc
                await asyncio.sleep(0.2)

    async def _get(self, seq: int) -> StoredEvent | BadEvent:
        msg = await self._js.get_msg(self._stream, seq=seq, direct=True)
        return _decode(seq, str(msg.subject), msg.data or b"")

    async def head_seq(self) -> int:
        info = await self._js.stream_info(self._stream)
        return int(info.state.last_seq)

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
        """An ordered consumer from `from_seq`; it recreates itself after gaps or reconnects."""
        sub = await self._js.subscribe(
            f"{self._prefix}.>",
            stream=self._stream,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(from_seq, 1)
            ),
            pending_msgs_limit=65_536,
        )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=5.0)
                except NatsTimeout:
                    continue
                seq = msg.metadata.sequence.stream
                item = _decode(seq, msg.subject, msg.data)
                if isinstance(item, BadEvent):
                    self._count_bad(item)
                    if include_bad:
                        yield item
                else:
                    yield item
                if end is not None and seq >= end:
                    return
        finally:
            await sub.unsubscribe()

    async def tail_batches(
        self, from_seq: int, *, max_batch: int = 1000, max_wait: float = 0.01, idle: float = 1.0
    ) -> AsyncGenerator[list[StoredEvent | BadEvent], None]:
        """Batches from an ephemeral pull consumer: we only ever ask for what we can take, so
        nothing piles up and nothing is dropped. A batch is closed when it holds `max_batch`
        events, or `max_wait` seconds after its first one arrived (0: what is there at once)."""
        loop = asyncio.get_running_loop()
        expected = max(from_seq, 1)
        puller, name = await self._pull_from(expected)
        try:
            while True:
                batch: list[StoredEvent | BadEvent] = []
                deadline: float | None = None
                while len(batch) < max_batch:
                    wait = idle if deadline is None else deadline - loop.time()
                    if wait < 0.001:  # not worth another round trip
                        break
                    msgs = await puller.fetch(max_batch - len(batch), wait=wait)
                    if not msgs:
                        break
                    if deadline is None:
                        deadline = loop.time() + max_wait
                    expected, later = self._take(msgs, expected, batch)
                    if later is None:
                        continue
                    if not await self._exists(expected):
                        raise SequenceGap(expected, later)
                    # Lost in transit (a reconnect): read again from where we are.
                    await self._drop_consumer(puller, name)
                    puller, name = await self._pull_from(expected)
                    break
                yield batch
        finally:
            await self._drop_consumer(puller, name)

    def _take(
        self, msgs: list[Any], expected: int, batch: list[StoredEvent | BadEvent]
    ) -> tuple[int, int | None]:
        """Append the messages that continue the log to `batch`. Returns the next sequence
        expected and, if a later one showed up instead, that sequence."""
        for msg in msgs:
            seq, pending = stream_position(msg)
            if seq < expected:
                continue  # seen before a consumer reset
            if seq > expected:
                return expected, seq
            expected = seq + 1
            self.pending = pending
            item = _decode(seq, msg.subject, msg.data)
            if isinstance(item, BadEvent):
                self._count_bad(item)
            batch.append(item)
        return expected, None

    async def _pull_from(self, seq: int) -> tuple[PullSubscriber, str]:
        info = await self._nc.jsm().add_consumer(
            self._stream,
            ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=seq,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=60.0,  # the server removes it if we vanish
            ),
        )
        name = str(info.name)
        return await PullSubscriber(self._nc, self._stream, name).start(), name

    async def _drop_consumer(self, puller: PullSubscriber, name: str) -> None:
        await puller.stop()
        with contextlib.suppress(Exception):
            await self._nc.jsm().delete_consumer(self._stream, name)

    async def _exists(self, seq: int) -> bool:
        try:
            await self._nc.jsm().get_msg(self._stream, seq=seq)
        except NotFoundError:
            return False
        return True


def _decode(seq: int, subject: str, data: bytes) -> StoredEvent | BadEvent:
    try:
        return StoredEvent(seq, subject, decode_event(data), data)
    except EventDecodeError as exc:
        return BadEvent(seq, subject, str(exc), data)
