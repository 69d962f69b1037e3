"""Deliveries of a durable JetStream pull consumer, as the `DeliverySource` port gives them
(`services.ports.jobs`): the worker's jobs, the ingest's reports, the advisories."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.nats.pull import PullSubscriber, delivery


class JsDelivery:
    """One delivered message: its data, subject, headers, stream sequence and delivery count
    read once, and the acknowledgements handed straight to the message (no extra coroutine)."""

    __slots__ = ("_msg", "data", "delivered", "headers", "seq", "subject")

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.data: bytes = msg.data
        self.headers: Mapping[str, str] | None = msg.headers
        self.subject: str = msg.subject
        self.seq, self.delivered = delivery(msg)

    def ack(self) -> Awaitable[None]:
        return self._msg.ack()

    def nak(self, delay: float | None = None) -> Awaitable[None]:
        return self._msg.nak(delay=delay)

    def in_progress(self) -> Awaitable[None]:
        return self._msg.in_progress()

    def term(self) -> Awaitable[None]:
        return self._msg.term()


class JetStreamDeliveries:
    """Fetches from the durable consumer `durable` of `stream`; the pull subscription is made
    on the first fetch and dropped by `close` (a later fetch makes it again)."""

    def __init__(self, nc: NATS, stream: str, durable: str) -> None:
        self._nc = nc
        self._stream = stream
        self._durable = durable
        self._puller: PullSubscriber | None = None

    async def fetch(self, n: int, wait: float) -> list[JsDelivery]:
        puller = self._puller
        if puller is None:
            puller = self._puller = await PullSubscriber(
                self._nc, self._stream, self._durable
            ).start()
        return [JsDelivery(msg) for msg in await puller.fetch(n, wait)]

    async def close(self) -> None:
        if self._puller is not None:
            await self._puller.stop()
            self._puller = None
