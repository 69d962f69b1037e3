"""The `workers` consumer's max-deliveries advisories, kept in `BAKER_ADVISORIES`, and the
queued job messages they name (`Advisories` port, `services.ports.jobs`)."""

from __future__ import annotations

from collections.abc import Mapping

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.deliveries import JetStreamDeliveries
from adapters.nats.streams import (
    ADVISORIES_CONSUMER,
    ADVISORIES_STREAM,
    INGEST_CONSUMER,
    JOBS_STREAM,
)


class JetStreamAdvisories(JetStreamDeliveries):
    def __init__(self, client: Client) -> None:
        super().__init__(client, ADVISORIES_STREAM, ADVISORIES_CONSUMER)
        self._api = client

    async def ingest_pending(self) -> int:
        info = await jsapi.consumer_info(self._api, JOBS_STREAM, INGEST_CONSUMER)
        return int(info.get("num_pending") or 0) + int(info.get("num_ack_pending") or 0)

    async def queued(self, seq: int) -> tuple[bytes, Mapping[str, str] | None] | None:
        # Through the stream leader: `BAKER_JOBS` does not allow direct gets.
        msg = await jsapi.get_msg(self._api, JOBS_STREAM, {"seq": seq})
        if msg is None:
            return None
        return msg.data, msg.headers or None

    async def remove(self, seq: int) -> None:
        await jsapi.delete_msg(self._api, JOBS_STREAM, seq)  # gone already: nothing to do
