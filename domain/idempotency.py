"""Idempotency keys (DESIGN §11): what a key remembers, and how two requests are compared.

A key remembers the job it created and a fingerprint of the request's job spec. A repeat with
the same key and the same spec is the same request sent again (a client retrying after a lost
answer): it answers the first job. The same key with another spec is a client bug (a key reused
for something else), refused rather than guessed at, as Stripe and the IETF
Idempotency-Key draft do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from domain.specs import AgentJob, CommandJob, HttpJob

DEFAULT_TTL = 86_400  # seconds (`BAKER_IDEMPOTENCY_TTL`)


@dataclass(frozen=True)
class Claim:
    """A key's record: the job it answers for, the spec's fingerprint, when it was taken."""

    key: str
    job_id: str
    fingerprint: str
    at: datetime

    def expired(self, now: datetime, ttl: float) -> bool:
        return now >= self.at + timedelta(seconds=ttl)

    def encode(self) -> bytes:
        return orjson.dumps(
            {"key": self.key, "jobId": self.job_id, "fingerprint": self.fingerprint,
             "at": self.at.isoformat()}
        )  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> Claim:
        """`ValueError` when `data` is not a claim."""
        doc: Any = orjson.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("an idempotency claim must be a JSON object")
        try:
            return cls(
                str(doc["key"]), str(doc["jobId"]), str(doc["fingerprint"]),
                datetime.fromisoformat(str(doc["at"])),
            )  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an idempotency claim: {exc}") from None


def fingerprint(spec: AgentJob | CommandJob | HttpJob) -> str:
    """sha256 of the spec as validated (defaults filled, key order fixed), without the key
    itself: two bodies that mean the same job have the same fingerprint."""
    doc = spec.model_dump(mode="json", by_alias=True, exclude={"idempotency_key"})
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def key_token(key: str) -> str:
    """A subject token for `key` (which may hold `.`, `*`, `>`): its sha256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()
