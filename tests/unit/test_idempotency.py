"""Idempotency keys on the in-memory store and a fake clock: the port's contract, and
dispatch with a key (first 202, repeat the first job, another spec refused, a key that names
a job never recorded finished by the retry, free again after the TTL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.eventstore import InMemoryEventStore
from domain.idempotency import Claim, fingerprint
from domain.specs import AgentJob, CommandJob, HttpJob, parse_job_spec
from services.brain.dispatcher import Dispatcher
from services.brain.idempotency import IdempotentDispatch, KeyReused
from services.executor import CommandExecutor
from tests.contract.idempotency_contract import TTL, IdempotencyContract
from tests.fakes.clock import FakeClock
from tests.fakes.idempotency import FakeIdempotencyKeys
from tests.fakes.jobqueue import FakeJobQueue


class TestFakeIdempotencyKeys(IdempotencyContract):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    async def keys(self, clock: FakeClock) -> AsyncIterator[FakeIdempotencyKeys]:
        yield FakeIdempotencyKeys(clock, TTL)


def spec(command: str = "echo hi", key: str = "k-1") -> AgentJob | CommandJob | HttpJob:
    return parse_job_spec(
        {"type": "command", "payload": {"command": command}, "idempotencyKey": key}
    )


def rig() -> tuple[IdempotentDispatch, FakeJobQueue, InMemoryEventStore, FakeClock]:
    clock, queue, store = FakeClock(), FakeJobQueue(), InMemoryEventStore()
    dispatcher = Dispatcher(CommandExecutor(store), queue)
    return IdempotentDispatch(dispatcher, FakeIdempotencyKeys(clock, TTL)), queue, store, clock


def test_the_fingerprint_ignores_the_key_and_spelling_but_not_the_job() -> None:
    a = parse_job_spec({"type": "command", "payload": {"command": "ls"}, "idempotencyKey": "1"})
    b = parse_job_spec({"payload": {"command": "ls"}, "type": "command", "idempotencyKey": "2"})
    c = parse_job_spec({"type": "command", "payload": {"command": "ls -l"}})
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


def test_a_claim_round_trips_and_garbage_is_refused() -> None:
    claim = Claim("k", "job-1", "fp", FakeClock().wall())
    assert Claim.decode(claim.encode()) == claim
    with pytest.raises(ValueError, match="claim"):
        Claim.decode(b'{"key": "k"}')


async def test_a_repeat_answers_the_first_job_and_dispatches_nothing() -> None:
    idem, queue, store, _ = rig()
    first = await idem.dispatch(spec(), "k-1")
    again = await idem.dispatch(spec(), "k-1")
    assert (first.created, again.created) == (True, False)
    assert again.dispatched.job_id == first.dispatched.job_id
    assert len(queue.published) == 1
    events = (await store.load("job", first.dispatched.job_id)).events
    assert [e.envelope.type for e in events] == ["JobDispatched"]  # no rejected repeat
    assert events[0].envelope.data.idempotency_key == "k-1"  # type: ignore[union-attr]


async def test_the_same_key_for_another_job_is_refused_naming_the_first() -> None:
    idem, queue, _, _ = rig()
    first = await idem.dispatch(spec("echo one"), "k-1")
    with pytest.raises(KeyReused) as refused:
        await idem.dispatch(spec("echo two"), "k-1")
    assert refused.value.job_id == first.dispatched.job_id
    assert len(queue.published) == 1


async def test_after_the_ttl_the_key_makes_a_new_job() -> None:
    idem, queue, _, clock = rig()
    first = await idem.dispatch(spec(), "k-1")
    await clock.advance(TTL)
    later = await idem.dispatch(spec("echo other"), "k-1")
    assert later.created and later.dispatched.job_id != first.dispatched.job_id
    assert len(queue.published) == 2


async def test_a_key_claimed_for_a_job_never_recorded_is_finished_by_the_retry() -> None:
    idem, queue, store, _ = rig()
    # The Brain died between claiming the key and recording the job.
    await idem.keys.claim("k-1", "job-0123456789abcdef", fingerprint(spec()))
    retry = await idem.dispatch(spec(), "k-1")
    assert (retry.created, retry.dispatched.job_id) == (True, "job-0123456789abcdef")
    assert (await store.load("job", "job-0123456789abcdef")).exists
    assert len(queue.published) == 1


async def test_concurrent_repeats_make_one_job() -> None:
    idem, queue, _, _ = rig()
    answers = await asyncio.gather(*(idem.dispatch(spec(), "k-1") for _ in range(5)))
    assert len({a.dispatched.job_id for a in answers}) == 1
    assert [a.created for a in answers].count(True) == 1
    assert len(queue.published) == 1
