"""The job ports' NATS adapters on a real nats-server pass the contract the fake passes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from adapters.nats import jsapi
from adapters.nats.advisories import JetStreamAdvisories
from adapters.nats.client import Client
from adapters.nats.deliveries import JetStreamDeliveries
from adapters.nats.job_queue import JetStreamJobQueue
from adapters.nats.streams import (
    INGEST_CONSUMER,
    JOBS_STREAM,
    WORKERS_CONSUMER,
    Topology,
    provision,
)
from tests.contract.job_ports_contract import ACK_WAIT, MAX_DELIVER, JobPortsContract, Ports, job

LIMIT = 20


class TestNatsJobPorts(JobPortsContract):
    @pytest.fixture
    async def ports(self, nc: Client) -> AsyncIterator[Ports]:
        topo = Topology(max_queued_jobs=LIMIT, ack_wait=ACK_WAIT, max_deliver=MAX_DELIVER)
        await provision(nc, topo)
        queue = JetStreamJobQueue(nc, retry_for=1.0)
        work = JetStreamDeliveries(nc, JOBS_STREAM, WORKERS_CONSUMER)
        reports = JetStreamDeliveries(nc, JOBS_STREAM, INGEST_CONSUMER)
        advisories = JetStreamAdvisories(nc)
        yield Ports(queue, queue, work, reports, advisories)
        for source in (work, reports, advisories):
            await source.close()
        await queue.close()

    async def fill_to_the_limit(self, ports: Ports) -> None:
        for i in range(LIMIT):
            await ports.queue.dispatch(job(f"job-f{i}"), {})


async def test_a_consumer_that_does_not_answer_is_reported_once_until_it_is_back(
    nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A removed consumer, or on a cluster one whose leader is being elected: one warning
    for the outage (not one per pull), and a word when it answers again."""
    caplog.set_level(logging.INFO, "baker.nats")
    await provision(nc)
    await jsapi.delete_consumer(nc, JOBS_STREAM, WORKERS_CONSUMER)
    work = JetStreamDeliveries(nc, JOBS_STREAM, WORKERS_CONSUMER)
    try:
        for _ in range(3):
            assert await work.fetch(1, 0.05) == []
        warned = [r for r in caplog.records if "does not answer" in r.getMessage()]
        assert len(warned) == 1 and "being elected" in warned[0].getMessage()
        await provision(nc)
        assert await work.fetch(1, 0.05) == []
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        await work.close()
