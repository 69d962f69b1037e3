"""A real 3-node JetStream cluster per test (loopback, free ports, temp stores, stopped by pid)
and what the HA tests ask it: a stream's leader, whether a node's replica has caught up."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.cluster import LocalCluster
from adapters.nats.connector import Options
from adapters.nats.errors import NatsError
from tests.polling import until


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    nodes = LocalCluster(tmp_path / "cluster", 3)
    nodes.start()
    try:
        await nodes.wait_ready()
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
async def admin(cluster: LocalCluster) -> AsyncIterator[Client]:
    """A connection of the test's own, to the whole cluster (it survives any one node)."""
    conn = await Client.connect(Options(url=cluster.url, name="test-admin"))
    try:
        yield conn
    finally:
        await conn.close()


async def stream_cluster(nc: Client, stream: str) -> dict[str, Any]:
    """`cluster` of the stream's STREAM.INFO (leader, replicas), its `state` merged in."""
    info = await jsapi.stream_info(nc, stream)
    return {**info.get("cluster", {}), "last_seq": info["state"]["last_seq"]}


async def leader_of(nc: Client, stream: str) -> str:
    """The server name of the stream's leader (waits for an election in progress)."""

    async def leader() -> str | None:
        try:
            found = (await stream_cluster(nc, stream)).get("leader")
        except NatsError:
            return None  # no leader to answer yet
        return str(found) if found else None

    found: str = await until(leader, f"a leader of {stream}", timeout=60)
    return found


async def caught_up(nc: Client, stream: str, node: str) -> dict[str, Any] | None:
    """The stream's cluster info once `node` is the leader or a current replica without lag."""
    try:
        info = await stream_cluster(nc, stream)
    except NatsError:
        return None
    if info.get("leader") == node:
        return info
    for peer in info.get("replicas") or []:
        if peer.get("name") == node and peer.get("current") and not peer.get("lag"):
            return info
    return None


async def lead_on(nc: Client, stream: str, node: str) -> None:
    """Move the stream's leadership to `node` (a step-down that prefers it, asked again until
    the new leader is `node`)."""

    async def leads() -> bool:
        if await leader_of(nc, stream) == node:
            return True
        with contextlib.suppress(NatsError):  # an election still running: ask again
            await jsapi.api(
                nc, f"STREAM.LEADER.STEPDOWN.{stream}", {"placement": {"preferred": node}}
            )
        return False

    await until(leads, f"{node} leading {stream}", timeout=60, every=0.5)
