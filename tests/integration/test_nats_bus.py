"""The NATS adapter of the bus port on a real nats-server: the shared contract."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.nats.bus import NatsBus
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.server import NatsServerProcess
from services.ports.bus import Bus
from tests.contract.bus_contract import BusContract


class TestNatsBus(BusContract):
    @pytest.fixture
    async def bus(self, nats_server: NatsServerProcess) -> AsyncIterator[NatsBus]:
        nc = await Client.connect(Options(url=nats_server.url, name="bus-contract"))
        yield NatsBus(nc)
        await nc.close()

    async def close(self, bus: Bus) -> None:
        assert isinstance(bus, NatsBus)
        await bus.nc.close()
