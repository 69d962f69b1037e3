"""One contract for the idempotency keys' port (`services.ports.idempotency`): the in-memory
fake and the JetStream KV adapter both subclass it. Time is a fake clock given to the store
(`clock`), so the TTL is crossed by moving it, never by waiting."""

from __future__ import annotations

import asyncio

from services.ports.idempotency import IdempotencyKeys
from tests.fakes.clock import FakeClock

TTL = 60.0


class IdempotencyContract:
    """Subclasses provide the fixtures `keys` (a store with ttl `TTL` on `clock`) and
    `clock`."""

    async def test_a_free_key_is_taken_for_the_job(self, keys: IdempotencyKeys) -> None:
        claim = await keys.claim("order-1", "job-a", "fp-1")
        assert (claim.key, claim.job_id, claim.fingerprint) == ("order-1", "job-a", "fp-1")

    async def test_a_taken_key_answers_the_first_claim_within_the_ttl(
        self, keys: IdempotencyKeys, clock: FakeClock
    ) -> None:
        first = await keys.claim("order-2", "job-a", "fp-1")
        await clock.advance(TTL - 1)
        again = await keys.claim("order-2", "job-b", "fp-2")
        assert (again.job_id, again.fingerprint, again.at) == ("job-a", "fp-1", first.at)

    async def test_after_the_ttl_the_key_is_free_again(
        self, keys: IdempotencyKeys, clock: FakeClock
    ) -> None:
        await keys.claim("order-3", "job-a", "fp-1")
        await clock.advance(TTL)
        later = await keys.claim("order-3", "job-b", "fp-2")
        assert (later.job_id, later.fingerprint) == ("job-b", "fp-2")
        assert (await keys.claim("order-3", "job-c", "fp-3")).job_id == "job-b"

    async def test_keys_are_independent_and_may_hold_any_printable_text(
        self, keys: IdempotencyKeys
    ) -> None:
        odd = ["a.b", "a.*", "a.>", "~!$", "x" * 255]
        for n, key in enumerate(odd):
            assert (await keys.claim(key, f"job-{n}", "fp")).job_id == f"job-{n}"
        for n, key in enumerate(odd):
            assert (await keys.claim(key, "job-late", "fp")).job_id == f"job-{n}"

    async def test_racing_claims_for_one_key_agree_on_one_winner(
        self, keys: IdempotencyKeys
    ) -> None:
        claims = await asyncio.gather(*(keys.claim("race", f"job-{n}", "fp") for n in range(8)))
        winners = {c.job_id for c in claims}
        assert len(winners) == 1, winners
