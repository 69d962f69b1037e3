"""The JetStream event store against a real nats-server: the shared contract, and more."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS

from adapters.nats.connection import NatsSettings, connect
from adapters.nats.event_store import JetStreamEventStore
from tests.contract.event_store_contract import EventStoreContract


class TestJetStreamEventStore(EventStoreContract):
    @pytest.fixture
    async def store(self, provisioned: NATS) -> AsyncIterator[JetStreamEventStore]:
        self._extra: list[NATS] = []
        yield JetStreamEventStore(provisioned)
        for conn in self._extra:
            await conn.close()

    async def other_writer(self, store: JetStreamEventStore) -> JetStreamEventStore:
        servers = store._nc.servers  # same server, a separate connection: another process
        conn = await connect(NatsSettings(url=f"nats://{servers[0].netloc}"))
        self._extra.append(conn)
        return JetStreamEventStore(conn)

    async def put_raw(self, store: JetStreamEventStore, subject: str, data: bytes) -> int:
        ack = await store._nc.jetstream().publish(subject, data)
        return int(ack.seq)
