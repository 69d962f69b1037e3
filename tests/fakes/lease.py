"""Leases in memory (`services.ports.lease.LeaseRecords`): a revision per change, shared by
every key as a stream's sequence is, and compare-and-set on it."""

from __future__ import annotations

import dataclasses

from domain.lease import Lease, LeaseTaken


class FakeLeases:
    def __init__(self) -> None:
        self.values: dict[str, Lease] = {}
        self.sequence = 0
        self.failing = False  # True: every call raises, as a server cut off would

    async def read(self, key: str) -> Lease | None:
        self._check()
        return self.values.get(key)

    async def create(self, key: str, lease: Lease) -> Lease:
        return await self._store(key, lease, 0)

    async def update(self, key: str, lease: Lease, revision: int) -> Lease:
        return await self._store(key, lease, revision)

    async def _store(self, key: str, lease: Lease, expected: int) -> Lease:
        self._check()
        held = self.values.get(key)
        if (held.revision if held is not None else 0) != expected:
            raise LeaseTaken(f"lease {key}: wrong last sequence")
        self.sequence += 1
        self.values[key] = dataclasses.replace(lease, revision=self.sequence)
        return self.values[key]

    def _check(self) -> None:
        if self.failing:
            raise ConnectionError("the lease store is unreachable")

    async def close(self) -> None:
        """Nothing to release."""
