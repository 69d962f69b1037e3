"""The `workers` consumer's max-deliveries advisories, kept in `BAKER_ADVISORIES`, and the
queued job messages they name (`Advisories` port, `services.ports.jobs`)."""

from __future__ import annotations

from collections.abc import Mapping

from nats.aio.client import Client as NATS
from nats.js.errors import APIError, NotFoundError

from adapters.nats.deliveries import JetStreamDeliveries
from adapters.nats.streams import (
    ADVISORIES_CONSUMER,
    ADVISORIES_STREAM,
    INGEST_CONSUMER,
    JOBS_STREAM,
)

NO_MESSAGE_FOUND = 10057  # deleting a message that is gone already


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
        try:
            await self._jsm.delete_msg(JOBS_STREAM, seq)
        except NotFoundError:
            return
        except APIError as exc:
            if exc.err_code != NO_MESSAGE_FOUND:
                raise
