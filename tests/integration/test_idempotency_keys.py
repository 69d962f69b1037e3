"""Idempotency keys in the JetStream KV bucket on a real nats-server: the port's contract (on
a fake clock), the server's own per-message TTL freeing a key with no clock of ours, and a key
outliving the Brain that took it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.idempotency import JetStreamIdempotencyKeys
from adapters.nats.job_queue import JetStreamJobQueue
from adapters.nats.streams import IDEMPOTENCY_PREFIX, IDEMPOTENCY_STREAM, provision
from domain.idempotency import key_token
from domain.specs import parse_job_spec
from services.brain.dispatcher import Dispatcher
from services.brain.idempotency import IdempotentDispatch
from services.executor import CommandExecutor
from tests.contract.idempotency_contract import TTL, IdempotencyContract
from tests.fakes.clock import FakeClock
from tests.polling import until


class TestJetStreamIdempotencyKeys(IdempotencyContract):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    async def keys(self, nc: Client, clock: FakeClock) -> AsyncIterator[JetStreamIdempotencyKeys]:
        await provision(nc)
        store = JetStreamIdempotencyKeys(nc, TTL, clock)
        yield store
        await store.close()


async def test_the_server_removes_a_claim_after_its_ttl(nc: Client) -> None:
    await provision(nc)
    keys = JetStreamIdempotencyKeys(nc, 1.0)
    assert (await keys.claim("short", "job-a", "fp")).job_id == "job-a"
    subject = f"{IDEMPOTENCY_PREFIX}.{key_token('short')}"

    async def gone() -> bool:
        query = {"last_by_subj": subject}
        return await jsapi.direct_get(nc, IDEMPOTENCY_STREAM, query) is None

    assert not await gone()
    await until(gone, timeout=10.0)
    assert (await keys.claim("short", "job-b", "fp")).job_id == "job-b"


async def test_a_key_outlives_the_brain_that_took_it(nc: Client) -> None:
    """A Brain restart or a handoff: a new Brain (its own executor, cache and key store on
    the same server) answers a repeat with the job the old one made, and makes nothing."""
    await provision(nc)
    spec = parse_job_spec(
        {"type": "command", "payload": {"command": "echo once"}, "idempotencyKey": "k-restart"}
    )

    def brain() -> IdempotentDispatch:
        store, queue = JetStreamEventStore(nc), JetStreamJobQueue(nc)
        return IdempotentDispatch(
            Dispatcher(CommandExecutor(store), queue), JetStreamIdempotencyKeys(nc, TTL)
        )

    first = await brain().dispatch(spec, "k-restart")
    again = await brain().dispatch(spec, "k-restart")
    assert (first.created, again.created) == (True, False)
    assert again.dispatched.job_id == first.dispatched.job_id
    assert again.dispatched.seq == first.dispatched.seq
    assert (await JetStreamJobQueue(nc).fill())[0] == 1  # queued once
