"""Shared fixtures: a real nats-server per test (free port, temp store, stopped by pid)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from adapters.nats.connection import NatsSettings, connect
from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import provision


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath)
        if "/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/e2e/" in path:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServerProcess]:
    server = NatsServerProcess(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_server: NatsServerProcess) -> AsyncIterator[NATS]:
    conn = await connect(NatsSettings(url=nats_server.url, name="baker-test"))
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def provisioned(nc: NATS) -> NATS:
    await provision(nc.jsm())
    return nc
