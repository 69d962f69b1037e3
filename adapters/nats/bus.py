"""The bus port (`services.ports.bus`) over our client.

Thin on purpose: it turns our client's messages and errors into the port's (`domain.bus`).
The client calls a subscription's callback as a read is parsed; the port's handlers are
coroutines awaited one message at a time, so each subscription has a queue and one task that
drains it (the bus carries heartbeats, registrations and task requests: not the job path).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from adapters.nats.client import Client
from adapters.nats.errors import ConnectionClosed, NatsError, NoResponders, RequestTimeout
from adapters.nats.message import Msg
from domain.bus import BusClosed, Message
from domain.bus import NoResponders as NobodyListens

Handler = Callable[[Message], Awaitable[None]]
log = logging.getLogger("baker.nats")


def _ours(msg: Msg) -> Message:
    return Message(msg.subject, msg.data, msg.headers if msg.raw_headers else None, msg.reply)


class BusSubscription:
    def __init__(self, client: Client, subject: str, handler: Handler, queue: str) -> None:
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._handler = handler
        self._sub = client.subscribe(subject, self._queue.put_nowait, queue=queue)
        self._task = asyncio.create_task(self._drain(), name=f"bus-{subject}")

    async def _drain(self) -> None:
        while True:
            msg = await self._queue.get()
            try:
                await self._handler(_ours(msg))
            except Exception:  # that message is lost, the subscription goes on
                log.exception("bus handler for %s failed", msg.subject)

    async def unsubscribe(self) -> None:
        self._sub.unsubscribe()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class NatsBus:
    def __init__(self, client: Client) -> None:
        self.nc = client

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    async def publish(
        self, subject: str, data: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        try:
            self.nc.publish(subject, data, headers=dict(headers) if headers else None)
        except ConnectionClosed as exc:
            raise BusClosed(f"cannot publish on {subject}: the NATS connection is closed") from exc

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str = ""
    ) -> BusSubscription:
        try:
            return BusSubscription(self.nc, subject, handler, queue)
        except ConnectionClosed as exc:
            raise BusClosed(f"cannot subscribe to {subject}: the connection is closed") from exc

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
        except NoResponders:
            raise NobodyListens(f"nobody listens on {subject}") from None
        except ConnectionClosed as exc:
            raise BusClosed(f"cannot request on {subject}: the connection is closed") from exc
        except (RequestTimeout, NatsError) as exc:  # no answer, or none will come (reconnect)
            raise TimeoutError(f"no answer on {subject} within {timeout:g}s ({exc})") from None
        return _ours(msg)

    async def flush(self, timeout: float = 5.0) -> None:
        try:
            await self.nc.flush(timeout)
        except ConnectionClosed as exc:
            raise BusClosed("cannot flush: the NATS connection is closed") from exc
