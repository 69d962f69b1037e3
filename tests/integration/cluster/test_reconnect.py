"""A daemon whose server dies carries on through another node of the cluster (DESIGN §13):
a worker's, then the Brain's. R3 streams, so the survivors hold everything."""

from __future__ import annotations

import asyncio

import pytest

from adapters.nats.client import Client
from adapters.nats.cluster import LocalCluster
from adapters.nats.streams import Topology, provision
from domain.specs import parse_job_spec
from tests.integration.pipeline import Pipeline, running_pipeline
from tests.polling import until

pytestmark = pytest.mark.cluster
SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})
TOPOLOGY = Topology(replicas=3, ack_wait=30.0)


async def run_jobs(pipe: Pipeline, count: int) -> None:
    jobs = await asyncio.gather(*(pipe.brain.dispatcher.dispatch(SPEC) for _ in range(count)))
    for job in jobs:
        await pipe.wait_job(job.job_id, {"completed"}, timeout=60)


def port(nc: Client) -> int | None:
    return nc.server.port if nc.server else None


async def test_a_worker_whose_server_dies_reconnects_and_jobs_complete(
    cluster: LocalCluster, admin: Client
) -> None:
    await provision(admin, TOPOLOGY)
    brain_node, worker_node = cluster.names[0], cluster.names[2]
    async with running_pipeline(
        cluster.nodes[brain_node], topology=TOPOLOGY, url=cluster.url_from(brain_node)
    ) as pipe:
        await pipe.start_worker(url=cluster.url_from(worker_node))
        conn = pipe.worker_conns[0]
        assert port(conn) == cluster.nodes[worker_node].port
        await run_jobs(pipe, 10)

        cluster.kill(worker_node)
        await until(lambda: conn.reconnects >= 1 and conn.is_connected, "the worker back")
        assert port(conn) != cluster.nodes[worker_node].port
        await run_jobs(pipe, 20)  # only this worker runs jobs: it took them after its move


async def test_the_brain_whose_server_dies_reconnects_and_later_jobs_complete(
    cluster: LocalCluster, admin: Client
) -> None:
    await provision(admin, TOPOLOGY)
    brain_node, worker_node = cluster.names[1], cluster.names[0]
    async with running_pipeline(
        cluster.nodes[brain_node], topology=TOPOLOGY, url=cluster.url_from(brain_node)
    ) as pipe:
        await pipe.start_worker(url=cluster.url_from(worker_node))
        await run_jobs(pipe, 10)

        cluster.kill(brain_node)
        await until(lambda: pipe.nc.reconnects >= 1 and pipe.nc.is_connected, "the Brain back")
        assert port(pipe.nc) != cluster.nodes[brain_node].port
        await run_jobs(pipe, 20)
