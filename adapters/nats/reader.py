"""Reading a stream in order: an ephemeral pull consumer without acks, made again where it
left off whenever something may have been lost.

JetStream hands each message of an ack-none consumer out once; one lost in transit (the
connection dropped between a pull and its answer) is gone for that consumer. So the reader
numbers what it receives by the consumer's own sequence (in each message's reply subject): at
a skipped number, when the client has reconnected since the consumer was made, or when the
server no longer has the consumer (removed as inactive while its reader was busy elsewhere),
the consumer is dropped and made again from the stream sequence after the last message
handed out. The
caller gets every message of the filter once, in stream order; a stream sequence that is
skipped with no consumer sequence skipped is a message that does not exist (deleted, or on
another subject), which is the caller's to judge.

The event store follows its log with it, the leader record's watch and the cancel signals'
listing read their KV streams with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from adapters.nats import jsapi
from adapters.nats.errors import TRANSIENT, NatsError
from adapters.nats.fetch import PullConsumer
from adapters.nats.message import Msg, sequences

if TYPE_CHECKING:
    from adapters.nats.client import Client

log = logging.getLogger("baker.nats")
Read = tuple[int, int, Msg]  # stream sequence, messages pending after it, the message
INACTIVE = 60_000_000_000  # ns: the server removes a consumer whose reader vanished


class OrderedReader:
    def __init__(
        self,
        client: Client,
        stream: str,
        *,
        start_seq: int | None = 1,
        filter_subject: str | None = None,
        retry_for: float = 30.0,
    ) -> None:
        """From `start_seq`, or (None) from the last message of each subject of the filter."""
        self._client = client
        self._stream = stream
        self._filter = filter_subject
        self._retry_for = retry_for
        self._next = start_seq  # the stream sequence the next consumer starts at
        self._puller: PullConsumer | None = None
        self._name = ""
        self._cseq = 1  # the consumer sequence expected next
        self._made_at = -1  # the client's reconnect count when the consumer was made

    async def fetch(self, n: int, wait: float) -> list[Read]:
        """Up to `n` messages in order: what is there now, else the first to arrive within
        `wait` seconds (none: an empty list)."""
        puller = self._puller
        if puller is None or puller.gone or self._client.reconnects != self._made_at:
            await self._restart()  # first, after a reconnect, or removed by the server
        assert self._puller is not None
        msgs = await self._puller.fetch(n, wait)
        if not msgs and self._puller.gone:  # removed while we were not pulling: once more
            await self._restart()
            msgs = await self._puller.fetch(n, wait)
        out: list[Read] = []
        for msg in msgs:
            _, sseq, cseq, pending = sequences(msg.reply)
            if cseq != self._cseq:  # lost in transit: read again after the last one out
                log.info("reader of %s: expected consumer seq %d, got %d: reading again",
                         self._stream, self._cseq, cseq)  # fmt: skip
                await self._restart()
                break
            self._cseq = cseq + 1
            self._next = sseq + 1
            out.append((sseq, pending, msg))
        return out

    async def _restart(self) -> None:
        await self.close()
        config: dict[str, Any] = {"ack_policy": "none", "inactive_threshold": INACTIVE,
                                  "mem_storage": True, "num_replicas": 1}  # fmt: skip
        if self._filter:
            config["filter_subject"] = self._filter
        if self._next is None:
            config["deliver_policy"] = "last_per_subject"
        else:
            config["deliver_policy"] = "by_start_sequence"
            config["opt_start_seq"] = max(self._next, 1)
        made_at = self._client.reconnects
        self._name = await self._with_retries(config)
        self._puller = PullConsumer(self._client, self._stream, self._name)
        self._cseq, self._made_at = 1, made_at

    async def _with_retries(self, config: dict[str, Any]) -> str:
        """Make the consumer; right after a reconnect the server may not answer at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for
        while True:
            try:
                return await jsapi.add_consumer(self._client, self._stream, config)
            except TRANSIENT:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.25)

    async def close(self) -> None:
        """Drop the consumer (a later `fetch` makes a new one where this one left off)."""
        puller, self._puller = self._puller, None
        if puller is None:
            return
        puller.stop()
        # Not awaited: after a reconnect the server may be slow to answer, and a consumer
        # whose delete is lost goes anyway once inactive.
        subject = f"{jsapi.API}.CONSUMER.DELETE.{self._stream}.{self._name}"
        with contextlib.suppress(NatsError):
            self._client.request(subject, b"").add_done_callback(_ignore)


def _ignore(future: asyncio.Future[Msg]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a lost answer is of no interest here
