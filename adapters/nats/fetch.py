"""Fetching from a JetStream pull consumer (durable or ephemeral) without a task per message.

`fetch(n, wait)` is one pull request: up to `n` messages that are there now, else the first to
arrive within `wait` (with whatever arrives together with it). The request is a `no_wait`
pull with an expiry, which the server answers at once when messages are there and otherwise
keeps waiting until one comes, then ends it (404) instead of holding it open for the rest of
the batch: one round trip per fetch, where a probe and then a waiting pull took two. It never
has more than `n` messages requested, so a worker with `n` free slots never receives more than
`n` jobs. A pull ends with its `n`-th message or a status: 404 (no more messages now), 408
(expired; or at once, "Requests Pending", when the messages there are promised to pulls that
came first: then the fetch waits with a plain pull of 1, as a probe would have), 409 (a
conflict: max waiting, consumer deleted...), 503 (no such consumer). After the last two `gone`
says the consumer no longer exists, so its owner can make it again instead of pulling in vain.

Each pull has its own reply subject under one wildcard subscription, so a status of an
earlier pull that gave up (its answer late after a reconnect) cannot end a later one; the
messages of that earlier pull are kept for the next `fetch` (they are ours to acknowledge).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from adapters.nats.message import Msg

if TYPE_CHECKING:
    from adapters.nats.client import Client

log = logging.getLogger("baker.nats")
_ENDS = frozenset((404, 408, 409, 503))
PROMISED = "Requests Pending"  # 408 at once: what is there is promised to earlier pulls
GRACE = 2.0  # past `wait`, when a pull's end did not come (the connection dropped)


class PullConsumer:
    def __init__(self, client: Client, stream: str, consumer: str) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._prefix = f"{client.new_inbox()}."
        self._sub = client.subscribe(f"{self._prefix}*", self._on_msg)
        self._ready: deque[Msg] = deque()
        self._pulls = itertools.count(1)
        self._reply = ""  # the reply subject of the pull under way
        self._want = 0
        self._ended: tuple[int, str] | None = None  # the status that ended the last pull
        self._waiter: asyncio.Future[None] | None = None
        self.last_status: tuple[int, str] | None = None  # a 409 says why (for logs)
        self.gone = False  # the consumer was deleted, or does not exist

    async def fetch(self, n: int, wait: float) -> list[Msg]:
        """Up to `n` messages: what is there now, else the first to arrive within `wait`."""
        if self._ready:
            return self._take(n)
        if wait <= 0:  # only what is there now (an expiry of 0 would be none)
            return await self._pull({"batch": n, "no_wait": True}, n, wait)
        expires = int(wait * 1e9)
        got = await self._pull({"batch": n, "no_wait": True, "expires": expires}, n, wait)
        if got or self._ended != (408, PROMISED):
            return got
        return await self._pull({"batch": 1, "expires": expires}, 1, wait)

    def _take(self, n: int) -> list[Msg]:
        ready = self._ready
        if len(ready) <= n:
            out = list(ready)
            ready.clear()
            return out
        return [ready.popleft() for _ in range(n)]

    async def _pull(self, request: dict[str, Any], n: int, wait: float) -> list[Msg]:
        self._reply = f"{self._prefix}{next(self._pulls)}"
        self._want = n
        self._ended = None
        waiter = self._waiter = self._loop.create_future()
        self._client.publish(self._next, orjson.dumps(request), reply=self._reply)
        timer = self._loop.call_later(wait + GRACE, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
            self._reply = ""
        return self._take(n)

    def _on_msg(self, msg: Msg) -> None:
        waiter = self._waiter
        if msg.is_status:
            status = msg.status
            if status in _ENDS and msg.subject == self._reply and waiter is not None:
                self._ended = (status, msg.description)
                if status in (409, 503):
                    self.last_status = (status, msg.description)
                    self.gone = status == 503 or "deleted" in msg.description.lower()
                    log.debug("pull on %s ended: %d %s", self._next, status, msg.description)
                _wake(waiter)
            return  # 100 heartbeats, and the ends of pulls that gave up
        self._ready.append(msg)
        if waiter is not None and len(self._ready) >= self._want:
            _wake(waiter)

    def stop(self) -> None:
        self._sub.unsubscribe()
        if self._waiter is not None:
            _wake(self._waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
