"""`baker provision` changes the replicas of existing streams and buckets in place on a
cluster (messages and consumers kept); a daemon starting only reports the difference."""

from __future__ import annotations

import pytest

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.streams import (
    EVENTS_STREAM,
    INGEST_CONSUMER,
    JOBS_STREAM,
    ProvisioningError,
    Topology,
    provision,
)
from tests.polling import until

pytestmark = pytest.mark.cluster


async def replicas(nc: Client, stream: str, consumer: str | None = None) -> int:
    """How many peers hold it now (the leader and the replicas it reports)."""
    if consumer is None:
        info = await jsapi.stream_info(nc, stream)
    else:
        info = await jsapi.consumer_info(nc, stream, consumer)
    return 1 + len(info.get("cluster", {}).get("replicas") or [])


async def test_provision_changes_replicas_in_place_and_daemons_only_report(admin: Client) -> None:
    await provision(admin, Topology(replicas=1))
    await admin.request("baker.events.job.job-1", b"{}")  # stored: its PubAck came
    with pytest.raises(ProvisioningError, match="BAKER_REPLICAS wants 3"):
        await provision(admin, Topology(replicas=3))  # as a daemon starts: reported

    done = await provision(admin, Topology(replicas=3), scale=True)
    assert done[EVENTS_STREAM] == done["KV_baker-cancels"] == "updated"
    assert set((await provision(admin, Topology(replicas=3))).values()) == {"ok"}
    await until(lambda: _is(admin, EVENTS_STREAM, None, 3), "BAKER_EVENTS on 3 peers")
    await until(lambda: _is(admin, JOBS_STREAM, INGEST_CONSUMER, 3), "its consumer follows")
    assert (await jsapi.stream_info(admin, EVENTS_STREAM))["state"]["messages"] == 1

    assert (await provision(admin, Topology(replicas=1), scale=True))[EVENTS_STREAM] == "updated"
    await until(lambda: _is(admin, EVENTS_STREAM, None, 1), "BAKER_EVENTS back on 1 peer")


async def _is(nc: Client, stream: str, consumer: str | None, count: int) -> bool:
    return await replicas(nc, stream, consumer) == count
