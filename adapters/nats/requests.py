"""Pipelined request/reply for JetStream publishes: one reply subscription, one sweeper.

nats-py's `request` arms a timer per call (`asyncio.wait_for`); at thousands of appends per
second that is a large share of the client's CPU. Here every pending request shares one
wildcard reply subscription, and a single sweeper task expires the ones past their deadline.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoRespondersError, OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeout

from adapters.nats.direct import deliver_directly


@dataclass(frozen=True, slots=True)
class Sent:
    """A request on the wire, waiting for its answer."""

    token: str
    future: asyncio.Future[Msg]


class RequestMux:
    def __init__(self, nc: NATS, sweep_every: float = 0.05) -> None:
        self._nc = nc
        self._sweep_every = sweep_every
        self._prefix = ""
        self._pending: dict[str, tuple[asyncio.Future[Msg], float]] = {}
        self._tokens = itertools.count()
        self._ready: asyncio.Lock | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._sub: Any = None

    async def _start(self) -> None:
        if self._ready is None:
            self._ready = asyncio.Lock()
        async with self._ready:
            if self._sub is not None:
                return
            inbox = self._nc.new_inbox()
            self._prefix = f"{inbox}."
            self._sub = await self._nc.subscribe(f"{inbox}.*", pending_msgs_limit=0)
            if not deliver_directly(self._sub, self._on_reply):
                self._pump = asyncio.create_task(self._read_replies(self._sub))
            self._sweeper = asyncio.create_task(self._sweep(), name="baker-request-sweeper")

    async def request(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, timeout: float
    ) -> Msg:
        """Publish with a reply subject and wait for the answer, or `nats.errors.TimeoutError`."""
        return await self.answer(await self.send(subject, payload, headers, timeout))

    async def send(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, timeout: float
    ) -> Sent:
        """Publish with a reply subject; `answer` waits for the reply (or `abandon` it)."""
        if self._sub is None:
            await self._start()
        loop = asyncio.get_running_loop()
        token = str(next(self._tokens))
        future: asyncio.Future[Msg] = loop.create_future()
        self._pending[token] = (future, loop.time() + timeout)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            self._pending.pop(token, None)
            raise
        return Sent(token, future)

    async def answer(self, sent: Sent) -> Msg:
        try:
            msg = await sent.future
        finally:
            self._pending.pop(sent.token, None)
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            raise NoRespondersError
        return msg

    def abandon(self, sent: Sent) -> None:
        """Forget a request whose answer is no longer wanted."""
        self._pending.pop(sent.token, None)
        if not sent.future.done():
            sent.future.cancel()
        elif not sent.future.cancelled():
            sent.future.exception()  # retrieved, so asyncio does not report it as lost

    def _on_reply(self, msg: Msg) -> None:
        entry = self._pending.get(msg.subject[len(self._prefix) :])
        if entry is not None and not entry[0].done():
            entry[0].set_result(msg)

    async def _read_replies(self, sub: Any) -> None:
        """Where direct delivery is refused: read the subscription's queue."""
        async for msg in sub.messages:
            self._on_reply(msg)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._sweep_every)
            now = loop.time()
            # Insertion order is deadline order when timeouts are equal; stop at the first live.
            for future, deadline in list(self._pending.values()):
                if deadline > now:
                    break
                if not future.done():
                    future.set_exception(NatsTimeout())

    async def close(self) -> None:
        for task in (self._sweeper, self._pump):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._sub is not None and not self._nc.is_closed:
            await self._sub.unsubscribe()
        self._sub = None


TRANSIENT = (NatsTimeout, TimeoutError, NoRespondersError, OutboundBufferLimitError)
"""Errors after which the same request may be sent again."""
Publish = tuple[str, bytes, dict[str, str] | None]  # subject, payload, headers


def pub_ack(subject: str, msg: Msg) -> tuple[int, bool]:
    """(stream sequence, duplicate) of a PubAck, or `PublishRefused`."""
    answer: dict[str, Any] = orjson.loads(msg.data)
    error = answer.get("error")
    if error is None:
        return int(answer["seq"]), bool(answer.get("duplicate"))
    raise PublishRefused(subject, int(error.get("err_code", 0)), str(error.get("description")))


class PublishRefused(Exception):
    """JetStream answered a publish with an error."""

    def __init__(self, subject: str, code: int, description: str) -> None:
        super().__init__(f"{subject}: {description} ({code})")
        self.code = code
        self.description = description


class PublishUnavailable(Exception):
    """JetStream did not answer a publish within the retry budget."""


class JetStreamPublisher:
    """Publishes to JetStream and waits for the PubAck, retrying silence with the same headers.

    With a `Nats-Msg-Id` header a retry of a publish that was in fact stored within the
    duplicate window is not stored again: answered as a duplicate, or (with an expected-sequence
    header, which 2.11 and later check first) refused as wrong-last-sequence, which the caller
    then recognises by the id on the subject's last message. Retrying is always safe.
    """

    def __init__(
        self,
        nc: NATS,
        *,
        request_timeout: float = 2.0,
        retry_for: float = 30.0,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self._nc = nc
        self.mux = RequestMux(nc)
        self.timeout = request_timeout
        self.retry_for = retry_for
        self.retries = 0
        self._on_retry = on_retry

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bool]:
        """(stream sequence, was it a duplicate); `PublishRefused` or `PublishUnavailable`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        delay = 0.05
        while True:
            try:
                msg = await self.mux.request(subject, payload, headers, self.timeout)
            except TRANSIENT as exc:
                if loop.time() >= deadline:
                    raise PublishUnavailable(f"{subject}: no answer ({exc!r})") from exc
                self.retries += 1
                if self._on_retry is not None:
                    self._on_retry()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except ConnectionClosedError as exc:
                raise PublishUnavailable(f"{subject}: NATS connection closed") from exc
            return pub_ack(subject, msg)

    async def publish_all(self, items: Sequence[Publish]) -> list[tuple[int, bool]]:
        """Publish `items` back to back (all on the wire before the first answer is awaited)
        and return their answers in order; one whose answer does not come is retried on its
        own, as `publish` does (same headers, so it is never stored twice)."""
        sent: list[Sent | None] = []
        try:
            for subject, payload, headers in items:
                try:
                    sent.append(await self.mux.send(subject, payload, headers, self.timeout))
                except TRANSIENT:
                    sent.append(None)
                except ConnectionClosedError as exc:
                    raise PublishUnavailable(f"{subject}: NATS connection closed") from exc
            return [
                await self._answer_or_retry(waiting, *item)
                for waiting, item in zip(sent, items, strict=True)
            ]
        finally:  # whatever was not answered (a refusal stopped us early) is forgotten
            for waiting in sent:
                if waiting is not None:
                    self.mux.abandon(waiting)

    async def _answer_or_retry(
        self, waiting: Sent | None, subject: str, payload: bytes, headers: dict[str, str] | None
    ) -> tuple[int, bool]:
        if waiting is not None:
            try:
                return pub_ack(subject, await self.mux.answer(waiting))
            except TRANSIENT:
                pass
        return await self.publish(subject, payload, headers)

    async def close(self) -> None:
        await self.mux.close()
