"""One subject of the bus as a `Topic` (`services.ports.topics`): what the Brain's handoff
controller and its watchdog's health leases need of core pub/sub."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.ports.bus import Bus, Message, Subscription


class BusTopic:
    def __init__(self, bus: Bus, subject: str) -> None:
        self.bus = bus
        self.subject = subject

    async def publish(self, data: bytes) -> None:
        """Publish and flush: sent when this returns."""
        await self.bus.publish(self.subject, data)
        await self.bus.flush()

    async def subscribe(self, handler: Callable[[bytes], Awaitable[None]]) -> Subscription:
        async def heard(msg: Message) -> None:
            await handler(msg.data)

        sub = await self.bus.subscribe(self.subject, heard)
        await self.bus.flush()  # the server has it: what is published from now on is heard
        return sub
