"""The JetStream event store survives server restarts and lost acknowledgements."""

from __future__ import annotations

import asyncio

import pytest

from adapters.eventstore import NEW
from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from domain.events import JobProgressed, JobStarted
from services.executor import CommandExecutor
from tests.contract.event_store_contract import dispatched
from tests.polling import until
from tests.support.proxy import HoldingProxy


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_acknowledged_events_survive_a_server_restart(
    nats_server: NatsServerProcess, provisioned: Client, how: str
) -> None:
    store = JetStreamEventStore(provisioned, request_timeout=0.5, retry_for=60)
    executor = CommandExecutor(store)
    pos = NEW
    acked = []
    for event in (dispatched(), JobStarted(attempt=1)):
        stored = await executor.append("job", "job-restart", [event], pos)
        acked += stored
        pos = stored[-1].position

    nats_server.stop() if how == "stop" else nats_server.kill()
    pending = asyncio.create_task(
        executor.append("job", "job-restart", [JobProgressed(attempt=1, progress="during")], pos)
    )
    await until(lambda: store.stats.retries >= 1, "the store retried")
    nats_server.start()  # same port, same store dir
    stored = await asyncio.wait_for(pending, 60)
    acked += stored
    pos = stored[-1].position
    acked += await executor.append(
        "job", "job-restart", [JobProgressed(attempt=1, progress="after")], pos
    )

    history = await store.load("job", "job-restart")
    assert [e.envelope.event_id for e in history.events] == [a.envelope.event_id for a in acked]
    assert [e.envelope.version for e in history.events] == [1, 2, 3, 4]
    assert provisioned.is_connected  # it reconnected by itself


async def test_a_retry_after_a_lost_ack_stores_one_copy(
    nats_server: NatsServerProcess, provisioned: Client
) -> None:
    proxy = HoldingProxy("127.0.0.1", nats_server.port)
    await proxy.start()
    conn = await Client.connect(f"nats://127.0.0.1:{proxy.port}")
    try:
        store = JetStreamEventStore(conn, request_timeout=0.3, retry_for=30)
        executor = CommandExecutor(store)
        first = await executor.append("job", "job-ack", [dispatched()], NEW)
        pos = first[0].position
        observer = JetStreamEventStore(provisioned)

        proxy.hold_replies()
        started = [JobStarted(attempt=1)]
        append = asyncio.create_task(executor.append("job", "job-ack", started, pos))

        async def stored_and_retried() -> bool:
            return await observer.head_seq() > first[0].seq and store.stats.retries >= 2

        await until(stored_and_retried, "stored after a retry")
        proxy.release()
        result = await asyncio.wait_for(append, 30)

        history = await observer.load("job", "job-ack")
        assert [e.envelope.type for e in history.events] == ["JobDispatched", "JobStarted"]
        assert result[0].seq == history.events[1].seq
        assert await observer.head_seq() == history.events[1].seq  # no second copy anywhere
    finally:
        await conn.close()
        await proxy.close()


async def test_the_head_is_asked_again_until_the_server_answers(
    nats_server: NatsServerProcess, provisioned: Client
) -> None:
    """A projector asks for the head as it starts and as it beats: during a restart, or a
    leader election on a cluster, the question waits for an answer instead of failing."""
    store = JetStreamEventStore(provisioned, request_timeout=0.5, retry_for=60)
    await CommandExecutor(store).append("job", "job-head", [dispatched()], NEW)
    nats_server.stop()
    asking = asyncio.create_task(store.head_seq())
    await until(lambda: store.stats.retries >= 1, "the store asked again")
    nats_server.start()  # same port, same store dir
    assert await asyncio.wait_for(asking, 60) == 1
