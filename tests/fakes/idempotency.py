"""Idempotency keys in memory, on an injected clock (`services.ports.idempotency`)."""

from __future__ import annotations

from domain.idempotency import Claim
from services.ports.clock import Clock


class FakeIdempotencyKeys:
    def __init__(self, clock: Clock, ttl: float) -> None:
        self.clock = clock
        self.ttl = ttl
        self.claims: dict[str, Claim] = {}

    async def claim(self, key: str, job_id: str, fingerprint: str) -> Claim:
        now = self.clock.wall()
        held = self.claims.get(key)
        if held is not None and not held.expired(now, self.ttl):
            return held
        self.claims[key] = Claim(key, job_id, fingerprint, now)
        return self.claims[key]

    async def close(self) -> None:
        """Nothing to release."""
