"""The inbox port (`services.ports.inbox`) over a JetStream durable pull consumer."""

from __future__ import annotations

from collections.abc import Mapping

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.nats.pull import PullSubscriber, delivery
from adapters.nats.streams import TASKS_CONSUMER, TASKS_STREAM


class NatsDelivery:
    __slots__ = ("_msg", "deliveries", "sequence")

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.sequence, self.deliveries = delivery(msg)

    @property
    def subject(self) -> str:
        return self._msg.subject

    @property
    def data(self) -> bytes:
        return self._msg.data

    @property
    def headers(self) -> Mapping[str, str] | None:
        return self._msg.headers

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay: float = 0.0) -> None:
        await self._msg.nak(delay=delay or None)

    async def term(self) -> None:
        await self._msg.term()


class NatsInbox:
    def __init__(self, puller: PullSubscriber) -> None:
        self._puller = puller

    async def fetch(self, batch: int, wait: float) -> list[NatsDelivery]:
        return [NatsDelivery(msg) for msg in await self._puller.fetch(batch, wait)]

    async def close(self) -> None:
        await self._puller.stop()


class PullInbox:
    """Opens an inbox on `stream`/`durable` (the consumer must exist: `provision` makes it)."""

    def __init__(self, nc: NATS, stream: str, durable: str) -> None:
        self._nc, self._stream, self._durable = nc, stream, durable

    async def __call__(self) -> NatsInbox:
        return NatsInbox(await PullSubscriber(self._nc, self._stream, self._durable).start())


def task_inbox(nc: NATS) -> PullInbox:
    """The task runners' status and result messages (consumer `brain-tasks`)."""
    return PullInbox(nc, TASKS_STREAM, TASKS_CONSUMER)
