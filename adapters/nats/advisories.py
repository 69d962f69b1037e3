"""The `workers` consumer's max-deliveries advisories, kept in `BAKER_ADVISORIES`, and the
queued job messages they name (`Advisories` port, `services.ports.jobs`)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from adapters.nats.deliveries import JetStreamDeliveries
from adapters.nats.streams import (
    ADVISORIES_CONSUMER,
    ADVISORIES_STREAM,
    INGEST_CONSUMER,
    JOBS_STREAM,
)


class JetStreamAdvisories(JetStreamDeliveries):
    def __init__(self, nc: NATS) -> None:
        super().__init__(nc, ADVISORIES_STREAM, ADVISORIES_CONSUMER)
        self._jsm = nc.jsm()

    async def ingest_pending(self) -> int:
        info = await self._jsm.consumer_info(JOBS_STREAM, INGEST_CONSUMER)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def queued(self, seq: int) -> tuple[bytes, Mapping[str, str] | None] | None:
        try:
            msg = await self._jsm.get_msg(JOBS_STREAM, seq=seq)
        except NotFoundError:
            return None
        return msg.data or b"", msg.headers

    async def remove(self, seq: int) -> None:
        with contextlib.suppress(NotFoundError):
            await self._jsm.delete_msg(JOBS_STREAM, seq)
