"""The lease store on a real nats-server (the `baker-leases` KV bucket): the port's contract,
and two candidates racing for one expired lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.lease import JetStreamLeases
from adapters.nats.streams import LEASES_STREAM, provision
from services.lease import LeaseCandidate
from tests.contract.lease_contract import LeaseContract
from tests.fakes.clock import FakeClock


class TestJetStreamLeases(LeaseContract):
    @pytest.fixture
    async def leases(self, nc: Client) -> AsyncIterator[JetStreamLeases]:
        await provision(nc)
        store = JetStreamLeases(nc)
        yield store
        await store.close()


async def test_the_bucket_is_provisioned_with_direct_reads(nc: Client) -> None:
    await provision(nc)
    info = await jsapi.stream_info(nc, LEASES_STREAM)
    assert info["config"]["allow_direct"] is True
    assert info["config"]["max_msgs_per_subject"] == 1


async def test_of_candidates_racing_for_an_expired_lease_one_wins(nc: Client) -> None:
    await provision(nc)
    clock = FakeClock()
    store = JetStreamLeases(nc)
    old = LeaseCandidate(store, "projector.race", "p-old", clock=clock)
    assert await old.try_acquire()
    await clock.advance(6.0)  # the holder died: its value expired
    racers = [LeaseCandidate(store, "projector.race", f"p-{n}", clock=clock) for n in range(6)]
    won = await asyncio.gather(*(r.try_acquire() for r in racers))
    assert won.count(True) == 1
    current = await store.read("projector.race")
    assert current is not None and current.holder == racers[won.index(True)].holder
