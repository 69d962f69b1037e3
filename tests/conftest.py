"""Shared fixtures: a real nats-server per test (free port, temp store, stopped by pid), our
client on it (`nc`, `provisioned`), and plain nats-py beside it as an oracle (`raw_nc`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import provision


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath)
        if "/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        elif "/fuzz/" in path:
            item.add_marker(pytest.mark.fuzz)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServerProcess]:
    server = NatsServerProcess(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_server: NatsServerProcess) -> AsyncIterator[Client]:
    """Our client, as every process of the system connects."""
    conn = await Client.connect(Options(url=nats_server.url, name="baker-test"))
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def raw_nc(nats_server: NatsServerProcess) -> AsyncIterator[NATS]:
    """Plain nats-py, an independent client for tests to check against (publishing raw
    messages, reading stream state): never the code under test."""
    conn = await nats.connect(nats_server.url, name="baker-test-oracle")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def provisioned(nc: Client) -> Client:
    await provision(nc)
    return nc
