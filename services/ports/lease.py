"""Leases with a fencing revision (`domain.lease`): the store a lease candidate reads and
changes by compare-and-set. The JetStream adapter (`adapters.nats.lease`) keeps them in the
`baker-leases` KV bucket; `tests.fakes.lease` keeps them in memory. Both pass
`tests/contract/lease_contract.py`. Time is not the store's business: expiry is decided by the
candidate (`services.lease`) on its injected clock."""

from __future__ import annotations

from typing import Protocol

from domain.lease import Lease


class LeaseRecords(Protocol):
    async def read(self, key: str) -> Lease | None:
        """The key's current value with its revision (a fresh read), None if there is none."""
        ...

    async def create(self, key: str, lease: Lease) -> Lease:
        """Store `lease` if the key has no value yet, else `LeaseTaken`; the stored value."""
        ...

    async def update(self, key: str, lease: Lease, revision: int) -> Lease:
        """Store `lease` if the key is still at `revision`, else `LeaseTaken`; the stored
        value (with its new revision)."""
        ...

    async def close(self) -> None: ...
