"""Provisioning while the cluster elects: a daemon that starts while a stream's leader is
being re-elected, or right after the cluster itself started again on its stores, provisions
once the elections are over instead of failing on an unanswered request."""

from __future__ import annotations

import pytest

from adapters.nats.client import Client
from adapters.nats.cluster import LocalCluster
from adapters.nats.connector import Options
from adapters.nats.streams import JOBS_STREAM, Topology, provision
from tests.integration.cluster.conftest import leader_of

pytestmark = pytest.mark.cluster
R3 = Topology(replicas=3)


async def test_provisioning_waits_out_a_leader_election(
    cluster: LocalCluster, admin: Client
) -> None:
    await provision(admin, R3)
    cluster.kill(await leader_of(admin, JOBS_STREAM))  # the first stream provisioning asks
    assert set((await provision(admin, R3)).values()) == {"ok"}


async def test_a_cluster_started_again_is_ready_for_provisioning(cluster: LocalCluster) -> None:
    nc = await Client.connect(Options(url=cluster.url, name="test-first"))
    try:
        await provision(nc, R3)
        await nc.request("baker.events.job.job-1", b"{}")
    finally:
        await nc.close()
    cluster.stop()

    again = LocalCluster(cluster.data_dir, 3)  # as a second `baker cluster up` on the dir
    again.start()
    try:
        await again.wait_ready()  # every stream and consumer has a leader again
        nc = await Client.connect(Options(url=again.url, name="test-again"))
        try:
            assert set((await provision(nc, R3)).values()) == {"ok"}
        finally:
            await nc.close()
    finally:
        again.stop()
