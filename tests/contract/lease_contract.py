"""One contract for the lease store (`services.ports.lease`): the in-memory fake and the
JetStream KV adapter both subclass it. The store keeps values and revisions only: expiry is
the candidate's decision, so no clock is involved here."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from domain.lease import Lease, LeaseTaken
from services.ports.lease import LeaseRecords

NOW = datetime(2026, 12, 5, 19, 0, tzinfo=UTC)


def lease(holder: str, seconds: float = 6.0) -> Lease:
    return Lease(holder, NOW + timedelta(seconds=seconds), host="h")


class LeaseContract:
    """Subclasses provide the fixture `leases` (an empty store)."""

    async def test_a_key_without_a_value_reads_none(self, leases: LeaseRecords) -> None:
        assert await leases.read("projector.none") is None

    async def test_create_stores_the_value_with_a_revision(self, leases: LeaseRecords) -> None:
        stored = await leases.create("projector.a", lease("p-1"))
        assert stored.revision > 0
        assert await leases.read("projector.a") == stored
        assert (stored.holder, stored.expires, stored.host) == ("p-1", lease("p-1").expires, "h")

    async def test_create_is_refused_once_the_key_has_a_value(self, leases: LeaseRecords) -> None:
        first = await leases.create("projector.b", lease("p-1"))
        with pytest.raises(LeaseTaken):
            await leases.create("projector.b", lease("p-2"))
        assert await leases.read("projector.b") == first

    async def test_update_on_the_current_revision_replaces_the_value(
        self, leases: LeaseRecords
    ) -> None:
        first = await leases.create("projector.c", lease("p-1"))
        renewed = await leases.update("projector.c", lease("p-1", 12), first.revision)
        assert renewed.revision > first.revision
        assert await leases.read("projector.c") == renewed

    async def test_update_on_an_older_revision_is_refused(self, leases: LeaseRecords) -> None:
        first = await leases.create("projector.d", lease("p-1"))
        taken = await leases.update("projector.d", lease("p-2"), first.revision)
        with pytest.raises(LeaseTaken):
            await leases.update("projector.d", lease("p-1", 12), first.revision)
        with pytest.raises(LeaseTaken):
            await leases.update("projector.e", lease("p-1"), first.revision)  # no value yet
        assert await leases.read("projector.d") == taken

    async def test_keys_are_independent(self, leases: LeaseRecords) -> None:
        one = await leases.create("projector.f", lease("p-1"))
        two = await leases.create("projector.g", lease("p-2"))
        assert await leases.read("projector.f") == one
        assert await leases.read("projector.g") == two

    async def test_racing_candidates_on_one_revision_agree_on_one_winner(
        self, leases: LeaseRecords
    ) -> None:
        first = await leases.create("projector.h", lease("p-0"))

        async def take(n: int) -> str | None:
            try:
                return (await leases.update("projector.h", lease(f"p-{n}"), first.revision)).holder
            except LeaseTaken:
                return None

        winners = [w for w in await asyncio.gather(*(take(n) for n in range(1, 9))) if w]
        assert len(winners) == 1
        current = await leases.read("projector.h")
        assert current is not None and current.holder == winners[0]

    async def test_racing_creates_agree_on_one_winner(self, leases: LeaseRecords) -> None:
        async def create(n: int) -> str | None:
            try:
                return (await leases.create("projector.i", lease(f"p-{n}"))).holder
            except LeaseTaken:
                return None

        winners = [w for w in await asyncio.gather(*(create(n) for n in range(8))) if w]
        assert len(winners) == 1
