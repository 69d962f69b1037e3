"""Leases on the in-memory store and a fake clock: the port's contract, the pure decision,
and the candidate (take, renew, expiry and takeover, losing the lease the moment a renewal
fails or does not finish in time, release)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from domain.lease import Lease, for_holder, next_step, read_model_lease
from services.lease import LeaseCandidate, LeaseSettings
from tests.contract.lease_contract import LeaseContract
from tests.fakes.clock import FakeClock
from tests.fakes.lease import FakeLeases

KEY = "projector.test"
SETTINGS = LeaseSettings(ttl=6.0, renew_every=2.0, check_every=1.0, margin=1.0)


class TestFakeLeases(LeaseContract):
    @pytest.fixture
    async def leases(self) -> AsyncIterator[FakeLeases]:
        yield FakeLeases()


NOW = datetime(2026, 12, 5, tzinfo=UTC)


def test_next_step_creates_renews_takes_over_or_waits() -> None:
    mine = for_holder("p-1", "h", NOW, 6)
    assert next_step(None, "p-1", NOW) == "create"
    assert next_step(mine, "p-1", NOW + timedelta(seconds=60)) == "renew"
    assert next_step(mine, "p-2", NOW + timedelta(seconds=5)) == "wait"
    assert next_step(mine, "p-2", NOW + timedelta(seconds=6)) == "take"


def test_a_value_round_trips_and_an_unreadable_one_reads_as_expired() -> None:
    value = for_holder("p-1", "host-a", NOW, 6)
    assert Lease.parse(value.encode(), 7) == Lease("p-1", value.expires, "host-a", 7)
    for junk in (b"{", b"[]", b'{"holder": "x"}', b'{"holder": "x", "expires": "2026-01-01"}'):
        broken = Lease.parse(junk, 3)
        assert broken.holder == "" and broken.revision == 3 and broken.expired(NOW)
        assert next_step(broken, "p-2", NOW) == "take"


def test_one_lease_per_read_model_location_each_a_valid_key() -> None:
    one, two = read_model_lease("sqlite:a:/x/rm.db"), read_model_lease("sqlite:b:/x/rm.db")
    assert one != two and one == read_model_lease("sqlite:a:/x/rm.db")
    assert one.startswith("projector.") and all(c.isalnum() or c == "." for c in one)


def pair(clock: FakeClock) -> tuple[FakeLeases, LeaseCandidate, LeaseCandidate]:
    leases = FakeLeases()
    a = LeaseCandidate(leases, KEY, "p-a", host="h", settings=SETTINGS, clock=clock)
    b = LeaseCandidate(leases, KEY, "p-b", host="h", settings=SETTINGS, clock=clock)
    return leases, a, b


async def test_the_first_candidate_takes_the_lease_and_the_second_waits() -> None:
    clock = FakeClock()
    leases, a, b = pair(clock)
    assert await a.try_acquire() and a.held
    assert not await b.try_acquire() and not b.held
    assert b.current is not None and b.current.holder == "p-a"
    stored = leases.values[KEY]
    assert stored.expires == clock.wall() + timedelta(seconds=6)


async def test_a_standby_takes_over_only_once_the_value_expired() -> None:
    clock = FakeClock()
    _leases, a, b = pair(clock)
    assert await a.try_acquire()
    await clock.advance(5.9)  # a died without renewing
    assert not a.held  # its own hold lapsed a margin before the expiry
    assert not await b.try_acquire()
    await clock.advance(0.1)
    assert await b.try_acquire() and b.held
    assert not await a.try_acquire()  # a's value was replaced: it waits now


async def test_a_holder_that_renews_keeps_the_lease_for_ever() -> None:
    clock = FakeClock()
    _leases, a, b = pair(clock)
    assert await a.try_acquire()
    stop = asyncio.Event()
    keeping = asyncio.create_task(a.keep(stop))
    for _ in range(10):
        await clock.sleepers(1)
        await clock.advance(2.0)
        assert a.held and not await b.try_acquire()
    stop.set()
    await keeping
    assert a.held


async def test_the_holder_stops_the_moment_a_renewal_fails() -> None:
    clock = FakeClock()
    leases, a, _b = pair(clock)
    assert await a.try_acquire()
    keeping = asyncio.create_task(a.keep(asyncio.Event()))
    await clock.sleepers(1)
    leases.failing = True
    await clock.advance(2.0)
    await keeping  # `keep` returned: the caller stops applying now
    assert not a.held
    leases.failing = False
    assert await a.try_acquire()  # its own value, not expired: renewed, held again


async def test_a_renewal_that_hangs_ends_the_hold_before_the_value_expires() -> None:
    clock = FakeClock()
    leases, a, b = pair(clock)
    assert await a.try_acquire()
    hang = asyncio.Event()
    real_update = leases.update

    async def stuck(key: str, lease: Lease, revision: int) -> Lease:
        await hang.wait()
        return await real_update(key, lease, revision)

    leases.update = stuck  # type: ignore[method-assign]
    keeping = asyncio.create_task(a.keep(asyncio.Event()))
    await clock.sleepers(1)
    await clock.advance(2.0)  # the renewal starts and hangs
    await clock.advance(2.9)
    assert a.held and not keeping.done()
    await clock.advance(0.1)  # ttl - margin after the last successful write
    await keeping
    assert not a.held
    leases.update = real_update
    await clock.advance(1.0)  # only now has the value a wrote expired for the others
    assert await b.try_acquire()


async def test_a_refused_renewal_ends_the_hold() -> None:
    clock = FakeClock()
    leases, a, _b = pair(clock)
    assert await a.try_acquire()
    held = leases.values[KEY]
    await leases.update(KEY, for_holder("p-b", "h", clock.wall(), 6), held.revision)  # by force
    assert not await a.renew() and not a.held


async def test_release_lets_a_standby_take_over_at_once() -> None:
    clock = FakeClock()
    _leases, a, b = pair(clock)
    assert await a.try_acquire()
    assert not await b.try_acquire()
    await a.release()
    assert not a.held
    assert await b.try_acquire()
    await a.release()  # not holding: nothing happens
    assert b.held
