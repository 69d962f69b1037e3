"""Request/reply for many requests at once: one inbox subscription, one deadline sweep.

Every request's reply subject is `<inbox>.<token>` under one wildcard subscription, and its
future is found by the token. Deadlines are kept per timeout value in send order, so the
oldest are always at the front: one timer (re-armed only while requests are pending) expires
them, instead of a timer per request, which at thousands of appends a second would be a
large share of the client's CPU.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import TYPE_CHECKING

from adapters.nats.errors import ConnectionLost, NoResponders, RequestTimeout
from adapters.nats.message import Msg

if TYPE_CHECKING:
    from adapters.nats.client import Client, Subscription


class RequestMux:
    def __init__(self, client: Client, sweep_every: float = 0.05) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._sweep_every = sweep_every
        self._sub: Subscription | None = None
        self._prefix = ""
        self._cut = 0
        self._pending: dict[str, asyncio.Future[Msg]] = {}
        self._deadlines: dict[float, deque[tuple[float, str]]] = {}
        self._tokens = itertools.count(1)
        self._sweep: asyncio.TimerHandle | None = None
        self._settled: asyncio.Future[None] | None = None

    def request(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, timeout: float
    ) -> asyncio.Future[Msg]:
        client = self._client
        if self._sub is None:
            inbox = client.new_inbox()
            self._prefix = f"{inbox}."
            self._cut = len(self._prefix)
            self._sub = client.subscribe(f"{inbox}.*", self._on_reply)
        loop = self._loop
        token = str(next(self._tokens))
        future: asyncio.Future[Msg] = loop.create_future()
        client.publish(subject, payload, reply=self._prefix + token, headers=headers)
        self._pending[token] = future
        queue = self._deadlines.get(timeout)
        if queue is None:
            queue = self._deadlines[timeout] = deque()
        queue.append((loop.time() + timeout, token))
        if self._sweep is None:
            self._sweep = loop.call_later(self._sweep_every, self._expire)
        return future

    @property
    def subscription(self) -> Subscription | None:
        return self._sub

    def _on_reply(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[self._cut :], None)
        if future is None or future.done():
            return
        if msg.raw_headers and not msg.data and msg.status == 503:
            future.set_exception(NoResponders(f"no responders for the request ({msg.subject})"))
        else:
            future.set_result(msg)
        if not self._pending:
            self._wake_settled()

    def _expire(self) -> None:
        self._sweep = None
        now = self._loop.time()
        pending = self._pending
        for timeout, queue in list(self._deadlines.items()):
            while queue and queue[0][0] <= now:
                future = pending.pop(queue.popleft()[1], None)
                if future is not None and not future.done():
                    future.set_exception(RequestTimeout(f"no answer within {timeout}s"))
            if not queue:
                del self._deadlines[timeout]
        if self._deadlines:
            self._sweep = self._loop.call_later(self._sweep_every, self._expire)
        if not pending:
            self._wake_settled()

    def lost(self) -> None:
        """The connection dropped: the answers in flight will not come (the inbox is
        subscribed again on the new connection, for the requests sent from now on)."""
        self._fail_all(ConnectionLost("the connection to NATS dropped before the answer"))

    def close(self, exc: Exception) -> None:
        self._fail_all(exc)
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._deadlines.clear()

    def _fail_all(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)
                future.exception()  # still raised to whoever awaits it; no "never retrieved"
        self._wake_settled()

    async def settled(self) -> None:
        """Wait until no request is waiting for its answer."""
        if self._pending:
            self._settled = self._loop.create_future()
            await self._settled

    def _wake_settled(self) -> None:
        if self._settled is not None and not self._settled.done():
            self._settled.set_result(None)
