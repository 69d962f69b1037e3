"""Core pub/sub on one subject, in memory (`services.ports.topics.Topic`); passes
`tests/contract/topic_contract.py` as `adapters.nats.topic.CoreTopic` does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

Handler = Callable[[bytes], Awaitable[None]]


class FakeTopic:
    def __init__(self) -> None:
        self.handlers: list[Handler] = []
        self.published: list[bytes] = []

    async def publish(self, data: bytes) -> None:
        self.published.append(data)
        for handler in list(self.handlers):
            # Delivered from the loop, not from inside `publish`, as a subscription would be.
            asyncio.get_running_loop().call_soon(asyncio.ensure_future, handler(data))

    async def subscribe(self, handler: Handler) -> FakeSubscription:
        self.handlers.append(handler)
        return FakeSubscription(self.handlers, handler)


class FakeSubscription:
    def __init__(self, handlers: list[Handler], handler: Handler) -> None:
        self._handlers = handlers
        self._handler = handler

    async def unsubscribe(self) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.remove(self._handler)
