"""Idempotency keys in a JetStream KV bucket (`baker-idempotency`), the port
`services.ports.idempotency.IdempotencyKeys`.

Why a KV bucket and not the event log: a key must be found in one read however old the log
is, must expire by itself after the TTL (the bucket's per-message TTL, server 2.11+, removes
it; the log is never trimmed), and must be taken by compare-and-set so two requests racing
for one key make one job (`Nats-Expected-Last-Subject-Sequence`). The bucket is on the same
server as the log, so it survives a Brain restart or a handoff as the jobs do.

A claim still stored after its TTL (the server removes expired messages on its own timer) is
treated as expired here too, from the injected clock, and replaced by compare-and-set.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Protocol

from adapters.clock import SYSTEM_CLOCK
from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.message import JetStreamError
from adapters.nats.publisher import JetStreamPublisher
from adapters.nats.streams import IDEMPOTENCY_PREFIX, IDEMPOTENCY_STREAM
from domain.idempotency import Claim, key_token

WRONG_LAST_SEQUENCE = 10071
ATTEMPTS = 8  # compare-and-set rounds against racing claimers before giving up


class WallClock(Protocol):
    def wall(self) -> datetime: ...


class KeyContention(RuntimeError):
    """The key changed under us on every attempt (never seen outside a pathological race)."""


class JetStreamIdempotencyKeys:
    def __init__(self, client: Client, ttl: float, clock: WallClock = SYSTEM_CLOCK) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._publisher = JetStreamPublisher(client, retry_for=10.0)

    async def claim(self, key: str, job_id: str, fingerprint: str) -> Claim:
        subject = f"{IDEMPOTENCY_PREFIX}.{key_token(key)}"
        expected = 0  # first try as a new key: one round trip in the common case
        for _ in range(ATTEMPTS):
            mine = Claim(key, job_id, fingerprint, self.clock.wall())
            headers = {
                "Nats-Expected-Last-Subject-Sequence": str(expected),
                "Nats-TTL": f"{max(1, math.ceil(self.ttl))}s",
            }
            try:
                await self._publisher.publish(subject, mine.encode(), headers)
                return mine
            except JetStreamError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
            held, seq = await self._read(subject)
            if held is not None and not held.expired(self.clock.wall(), self.ttl):
                return held  # (our own, when a retried publish was stored the first time)
            expected = seq
        raise KeyContention(f"idempotency key {key!r}: still contended after {ATTEMPTS} tries")

    async def _read(self, subject: str) -> tuple[Claim | None, int]:
        """The key's claim (None when gone or unreadable: replaced) and its sequence."""
        msg = await jsapi.direct_get(self.client, IDEMPOTENCY_STREAM, {"last_by_subj": subject})
        if msg is None:
            return None, 0
        seq = int(msg.headers["Nats-Sequence"]) if msg.headers else 0
        try:
            return Claim.decode(msg.data), seq
        except ValueError:
            return None, seq

    async def close(self) -> None:
        """Nothing to release: requests share the client's reply subscription."""
