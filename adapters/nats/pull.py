"""Fetching from a durable pull consumer without a timer per message.

`fetch(n, wait)` first asks for up to `n` messages that are available right now (`no_wait`),
and only if there are none, waits up to `wait` for one. It never has more than `n` messages
requested, so a worker with `n` free slots never receives more than `n` jobs, and a message
that arrives is returned at once rather than after the pull expires.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

_END = {"404", "408", "409"}  # no messages, request expired, request conflict


class PullSubscriber:
    def __init__(self, nc: NATS, stream: str, durable: str) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._sub: Any = None
        self._inbox = ""

    async def start(self) -> PullSubscriber:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, pending_msgs_limit=1_000_000)
        return self

    async def fetch(self, n: int, wait: float) -> list[Msg]:
        """Up to `n` messages: what is there now, else the first to arrive within `wait`."""
        msgs = self._buffered(n)
        if msgs:
            return msgs
        got = await self._pull({"batch": n, "no_wait": True}, n, wait)
        if got:
            return got
        return await self._pull({"batch": 1, "expires": int(wait * 1e9)}, 1, wait)

    def _buffered(self, n: int) -> list[Msg]:
        """Messages of an earlier pull that arrived after it gave up (still ours to handle)."""
        out: list[Msg] = []
        while len(out) < n and (msg := take_nowait(self._sub)) is not None:
            if _status(msg) is None:
                out.append(msg)
        return out

    async def _pull(self, request: dict[str, Any], n: int, wait: float) -> list[Msg]:
        await self._nc.publish(self._next, orjson.dumps(request), reply=self._inbox)
        out: list[Msg] = []
        # One deadline for the whole pull: if the connection drops, its status never comes.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait + 2.0):
                while len(out) < n:
                    msg = await take(self._sub)
                    status = _status(msg)
                    if status is None:
                        out.append(msg)
                    elif status in _END:
                        break
        return out

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


def _status(msg: Msg) -> str | None:
    if msg.data or not msg.headers:
        return None
    return msg.headers.get("Status")


# nats-py's `next_msg` starts a task and a timer for every message; these take from the
# subscription's queue directly and keep its pending-bytes count right (otherwise it would
# believe we are a slow consumer and start dropping messages).


def take_nowait(sub: Any) -> Msg | None:
    """The next queued message of an iterator-mode subscription, or None."""
    try:
        msg: Msg = sub._pending_queue.get_nowait()
    except asyncio.QueueEmpty:
        return None
    sub._pending_size -= len(msg.data)
    return msg


async def take(sub: Any) -> Msg:
    """Wait for the next message of an iterator-mode subscription."""
    msg: Msg = await sub._pending_queue.get()
    sub._pending_size -= len(msg.data)
    return msg


def delivery(msg: Msg) -> tuple[int, int]:
    """(stream sequence, delivery count) of a JetStream delivery, from its reply subject."""
    tokens = msg.reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[4])
    return int(tokens[7]), int(tokens[6])


def stream_position(msg: Msg) -> tuple[int, int]:
    """(stream sequence, messages pending after it) from a JetStream delivery's reply subject,
    without building nats-py's full metadata object (a date and seven ints per message)."""
    tokens = msg.reply.split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return int(tokens[5]), int(tokens[8])
    # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>...
    return int(tokens[7]), int(tokens[10])
