"""Deliveries of a durable JetStream pull consumer, as the `DeliverySource` port gives them
(`services.ports.jobs`): the worker's jobs, the ingest's reports, the advisories."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from adapters.nats.client import Client
from adapters.nats.fetch import PullConsumer
from adapters.nats.message import Msg, sequences

log = logging.getLogger("baker.nats")


class JsDelivery:
    """One delivered message: its stream sequence and delivery count read once from the reply
    subject; settling it is a publish on our client, so it is synchronous (on the wire at the
    loop's next turn) and costs no coroutine."""

    __slots__ = ("_msg", "data", "delivered", "pending", "seq", "subject")

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.data: bytes = msg.data
        self.subject: str = msg.subject
        self.delivered, self.seq, _, self.pending = sequences(msg.reply)

    @property
    def headers(self) -> Mapping[str, str] | None:
        """Parsed on first use (the ingest reads them, a PubAck never does)."""
        return self._msg.headers if self._msg.raw_headers else None

    def ack(self) -> None:
        self._msg.ack()

    def nak(self, delay: float | None = None) -> None:
        self._msg.nak(delay)

    def in_progress(self) -> None:
        self._msg.in_progress()

    def term(self) -> None:
        self._msg.term()


class JetStreamDeliveries:
    """Fetches from the durable consumer `durable` of `stream`; the pull subscription is made
    on the first fetch and dropped by `close` (a later fetch makes it again)."""

    def __init__(self, client: Client, stream: str, durable: str) -> None:
        self._client = client
        self._stream = stream
        self._durable = durable
        self._puller: PullConsumer | None = None
        self._missing = False  # said so once; said again only after it came back

    async def fetch(self, n: int, wait: float) -> list[JsDelivery]:
        puller = self._puller
        if puller is None:
            puller = self._puller = PullConsumer(self._client, self._stream, self._durable)
        got = await puller.fetch(n, wait)
        if not got and puller.gone:  # nobody answers for it: say so, do not pull in a loop
            if not self._missing:
                # On a cluster this is also how a consumer looks while its leader's node is
                # down and the others elect a new one (seconds): not only a removed consumer.
                log.warning("consumer %s of %s does not answer: removed (run `baker "
                            "provision`), or on a cluster its new leader is being elected",
                            self._durable, self._stream)  # fmt: skip
                self._missing = True
            puller.gone = False
            await asyncio.sleep(wait)  # pacing the pulls while it is missing
        elif self._missing and (got or not puller.gone):
            log.info("consumer %s of %s answers again", self._durable, self._stream)
            self._missing = False
        return [JsDelivery(msg) for msg in got]

    async def close(self) -> None:
        if self._puller is not None:
            self._puller.stop()
            self._puller = None
