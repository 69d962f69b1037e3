"""The idempotency keys' port: a durable key -> first job map whose entries live `ttl` seconds.

It must outlive the Brain (a restart or a handoff keeps every key), so the JetStream adapter
(`adapters.nats.idempotency`) keeps it in a KV bucket; `tests.fakes.idempotency` keeps it in
memory. Both pass `tests/contract/idempotency_contract.py`.
"""

from __future__ import annotations

from typing import Protocol

from domain.idempotency import Claim


class IdempotencyKeys(Protocol):
    ttl: float  # seconds a claim holds

    async def claim(self, key: str, job_id: str, fingerprint: str) -> Claim:
        """Take `key` for `job_id` unless a claim younger than `ttl` holds it; the claim that
        holds after the call: ours (its `job_id` is ours) or the earlier one. Two callers
        racing for a free key: exactly one wins, the other gets the winner's claim."""
        ...

    async def close(self) -> None: ...
