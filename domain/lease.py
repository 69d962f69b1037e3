"""A renewable lease with a fencing revision (DESIGN §13): who may apply events to one read
model, and until when. Pure: the value, its encoding, and what a candidate does next.

The lease is one key of a KV bucket. Its value names the holder and when it expires (wall
time, UTC); its revision is the key's stream sequence, and every change is a compare-and-set
on it, so of two candidates acting on the same value exactly one wins. A holder renews well
before the expiry; a candidate takes the lease over only once the value it read has expired.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

Step = Literal["create", "renew", "take", "wait"]


class LeaseTaken(Exception):
    """The key changed since it was read (or exists already): someone else acted first."""


@dataclass(frozen=True)
class Lease:
    """A lease's value: its holder (and that holder's host), its expiry, and the revision it
    was stored at (0: not stored yet)."""

    holder: str
    expires: datetime
    host: str = ""
    revision: int = 0

    def expired(self, now: datetime) -> bool:
        return now >= self.expires

    def encode(self) -> bytes:
        return orjson.dumps(
            {"holder": self.holder, "host": self.host, "expires": self.expires.isoformat()}
        )

    @staticmethod
    def parse(data: bytes, revision: int) -> Lease:
        """The stored value; one that is not a lease reads as expired long ago, held by
        nobody, so the next candidate takes it over."""
        try:
            doc: Any = orjson.loads(data)
            expires = datetime.fromisoformat(str(doc["expires"]))
            if expires.tzinfo is None:
                raise ValueError("expires: no time zone")
            return Lease(str(doc["holder"]), expires, str(doc.get("host", "")), revision)
        except (ValueError, KeyError, TypeError, AttributeError):
            return Lease("", datetime(1970, 1, 1, tzinfo=UTC), "", revision)


def for_holder(holder: str, host: str, now: datetime, ttl: float) -> Lease:
    """The value a holder writes at `now`: valid for `ttl` seconds."""
    return Lease(holder, now + timedelta(seconds=ttl), host)


def next_step(current: Lease | None, me: str, now: datetime) -> Step:
    """What candidate `me` does with the value it just read: `create` the key (none yet),
    `renew` its own, `take` over an expired (or unreadable) one, or `wait`."""
    if current is None:
        return "create"
    if current.holder == me:
        return "renew"
    return "take" if current.expired(now) else "wait"


def read_model_lease(location: str) -> str:
    """The lease key of the read model at `location` (e.g. `sqlite:host:/abs/path`): one
    lease per read model, a valid KV key whatever the location's characters."""
    return f"projector.{hashlib.sha256(location.encode()).hexdigest()[:24]}"
