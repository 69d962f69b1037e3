"""One core NATS subject as a `Topic` (`services.ports.topics`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription


class CoreTopic:
    def __init__(self, nc: NATS, subject: str) -> None:
        self._nc = nc
        self.subject = subject

    async def publish(self, data: bytes) -> None:
        await self._nc.publish(self.subject, data)
        await self._nc.flush()

    async def subscribe(self, handler: Callable[[bytes], Awaitable[None]]) -> Subscription:
        async def heard(msg: Msg) -> None:
            await handler(msg.data)

        sub = await self._nc.subscribe(self.subject, cb=heard)
        await self._nc.flush()  # the server has it: what is published from now on is heard
        return sub
