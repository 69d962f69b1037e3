"""Direct delivery: hand a subscription's messages to a function as nats-py parses them.

nats-py puts every message of a subscription on an `asyncio.Queue` and, for a callback
subscription, runs a task that takes it off and awaits a coroutine for it: two hops through
the event loop per message. For replies to our own requests (one per append or publish) that
is a noticeable share of the client's CPU. `deliver_directly` swaps the queue of a
subscription without a callback for a stand-in that calls `deliver(msg)` at once, keeping the
pending-bytes count nats-py checks right. It refuses (returns False) when nats-py's
subscription does not have the shape it knows, and the caller then reads the queue itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg

log = logging.getLogger("baker.nats")


class _Handoff:
    """Stands in for `Subscription._pending_queue` (the parts nats-py uses)."""

    def __init__(self, sub: Any, deliver: Callable[[Msg], None]) -> None:
        self._sub = sub
        self._deliver = deliver

    def put_nowait(self, msg: Msg) -> None:
        self._sub._pending_size -= len(msg.data)
        try:
            self._deliver(msg)
        except Exception:  # never into nats-py's read loop: it would drop the connection
            with contextlib.suppress(Exception):  # not even from a broken log handler
                log.exception("delivering a message on %s failed", msg.subject)

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def task_done(self) -> None:
        return None

    async def join(self) -> None:
        return None


def deliver_directly(sub: Any, deliver: Callable[[Msg], None]) -> bool:
    """Make `sub` (subscribed without a callback) call `deliver` for each message."""
    queue = getattr(sub, "_pending_queue", None)
    if not isinstance(queue, asyncio.Queue) or getattr(sub, "_cb", None) is not None:
        return False
    if not isinstance(getattr(sub, "_pending_size", None), int) or not queue.empty():
        return False
    sub._pending_queue = _Handoff(sub, deliver)
    return True
