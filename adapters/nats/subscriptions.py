"""Our client's subscriptions as the ports see them (`services.ports.topics.Subscription`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from adapters.nats.client import Subscription


class CoreSubscription:
    """One subscription of the client; `on_stop` (if any) is awaited after unsubscribing."""

    def __init__(
        self, sub: Subscription, on_stop: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self._sub = sub
        self._on_stop = on_stop

    async def unsubscribe(self) -> None:
        self._sub.unsubscribe()  # nothing to send once closed: never raises
        if self._on_stop is not None:
            await self._on_stop()
