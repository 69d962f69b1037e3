"""The JetStream event store against a real nats-server: the shared storage contract, the
command executor's contract over it, and more."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS

from adapters.eventstore import NEW, SequenceGap
from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from domain.events import JobDispatched
from services.executor import CommandExecutor
from tests.contract.event_store_contract import EventStoreContract
from tests.contract.executor_contract import ExecutorContract


class OnJetStream:
    @pytest.fixture
    async def store(
        self, provisioned: Client, nats_server: NatsServerProcess, raw_nc: NATS
    ) -> AsyncIterator[JetStreamEventStore]:
        self._url = nats_server.url
        self._raw = raw_nc
        self._extra: list[Client] = []
        self._stores: list[JetStreamEventStore] = []
        yield JetStreamEventStore(provisioned)
        for store in self._stores:
            await store.close()
        for conn in self._extra:
            await conn.close()

    async def other_writer(self, store: JetStreamEventStore) -> JetStreamEventStore:
        conn = await Client.connect(self._url)  # a separate connection: another process
        self._extra.append(conn)
        other = JetStreamEventStore(conn)
        self._stores.append(other)
        return other


class TestJetStreamEventStore(OnJetStream, EventStoreContract):
    async def put_raw(self, store: JetStreamEventStore, subject: str, data: bytes) -> int:
        ack = await self._raw.jetstream().publish(subject, data)  # not through the store
        return int(ack.seq)


class TestExecutorOnJetStream(OnJetStream, ExecutorContract):
    pass


async def test_a_gap_in_the_log_stops_a_batch_reader(provisioned: Client, raw_nc: NATS) -> None:
    jsm = raw_nc.jsm()
    await jsm.add_stream(name="GAPPY", subjects=["gappy.>"])
    store = JetStreamEventStore(provisioned, stream="GAPPY", prefix="gappy")
    executor = CommandExecutor(store)
    for i in range(3):
        event = JobDispatched(job_type="command", payload={})
        await executor.append("job", f"job-g{i}", [event], NEW)
    await jsm.delete_msg("GAPPY", 2)
    batches = store.tail_batches(1, idle=0.5)
    with pytest.raises(SequenceGap, match="expected 2, got 3"):
        async for _ in batches:
            pass
    await store.close()
