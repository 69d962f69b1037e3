"""Idempotency keys in the JetStream KV bucket on a real nats-server: the port's contract (on
a fake clock), and the server's own per-message TTL freeing a key with no clock of ours."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.idempotency import JetStreamIdempotencyKeys
from adapters.nats.streams import IDEMPOTENCY_PREFIX, IDEMPOTENCY_STREAM, provision
from domain.idempotency import key_token
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
