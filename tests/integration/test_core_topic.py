"""`CoreTopic` on a real nats-server passes the `Topic` contract the fake passes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS

from adapters.nats.connection import NatsSettings, connect
from adapters.nats.server import NatsServerProcess
from adapters.nats.topic import CoreTopic
from tests.contract.topic_contract import TopicContract


class TestCoreTopic(TopicContract):
    @pytest.fixture
    def topic(self, nc: NATS) -> CoreTopic:
        return CoreTopic(nc, "baker.test.topic")

    @pytest.fixture
    async def other(self, nats_server: NatsServerProcess) -> AsyncIterator[CoreTopic]:
        conn = await connect(NatsSettings(url=nats_server.url, name="test-other"))
        topic = CoreTopic(conn, "baker.test.topic")
        await conn.flush()
        yield topic
        await conn.close()
