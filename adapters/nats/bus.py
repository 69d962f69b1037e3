"""The bus port (`services.ports.bus`) over a nats-py client, public API only.

Thin on purpose: it turns nats-py's messages and errors into ours (`domain.bus`) and nothing
else, so switching to our own client later changes this file alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Mapping

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import ConnectionClosedError, NoRespondersError

from domain.bus import BusClosed, Message, NoResponders

Handler = Callable[[Message], Awaitable[None]]


def _ours(msg: Msg) -> Message:
    return Message(msg.subject, msg.data, msg.headers, msg.reply)


class BusSubscription:
    def __init__(self, sub: NatsSubscription) -> None:
        self._sub = sub

    async def unsubscribe(self) -> None:
        with contextlib.suppress(ConnectionClosedError):  # closed: nothing arrives anyway
            await self._sub.unsubscribe()


class NatsBus:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def publish(
        self, subject: str, data: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        try:
            await self.nc.publish(subject, data, headers=dict(headers) if headers else None)
        except ConnectionClosedError as exc:
            raise BusClosed(f"cannot publish on {subject}: the NATS connection is closed") from exc

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str = ""
    ) -> BusSubscription:
        async def deliver(msg: Msg) -> None:
            await handler(_ours(msg))

        try:
            sub = await self.nc.subscribe(subject, queue=queue, cb=deliver)
        except ConnectionClosedError as exc:
            raise BusClosed(f"cannot subscribe to {subject}: the connection is closed") from exc
        return BusSubscription(sub)

    async def request(
        self,
        subject: str,
        data: bytes = b"",
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> Message:
        try:
            msg = await self.nc.request(
                subject, data, timeout=timeout, headers=dict(headers) if headers else None
            )
        except NoRespondersError:
            raise NoResponders(f"nobody listens on {subject}") from None
        except ConnectionClosedError as exc:
            raise BusClosed(f"cannot request on {subject}: the connection is closed") from exc
        except TimeoutError:  # nats-py's own TimeoutError is a subclass
            raise TimeoutError(f"no answer on {subject} within {timeout:g}s") from None
        return _ours(msg)

    async def flush(self, timeout: float = 5.0) -> None:
        try:
            await self.nc.flush(timeout=math.ceil(timeout))
        except ConnectionClosedError as exc:
            raise BusClosed("cannot flush: the NATS connection is closed") from exc
