"""Core publish/subscribe, as the Brain's parts use it: one subject each (handoff messages,
health heartbeats), no delivery guarantee, whoever listens at the time hears it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class Topic(Protocol):
    """One subject of core pub/sub."""

    async def publish(self, data: bytes) -> None:
        """Send `data` to every current subscriber (sent when this returns)."""
        ...

    async def subscribe(self, handler: Callable[[bytes], Awaitable[None]]) -> Subscription:
        """Call `handler(data)` for every message published from now on."""
        ...


class Heartbeat(Protocol):
    """A daemon's health heartbeats as `instance`: `details()` now and then until `stop`, then
    a last one saying it is stopping. `refresh` (if any) is awaited before every beat but the
    first, so `details` can carry a value measured then."""

    def __call__(
        self,
        instance: str,
        details: Callable[[], dict[str, Any]],
        stop: asyncio.Event,
        refresh: Callable[[], Awaitable[Any]] | None = None,
    ) -> Awaitable[None]: ...
