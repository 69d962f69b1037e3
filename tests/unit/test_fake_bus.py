"""The in-memory bus keeps the bus port's contract, and what it adds for tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from domain.bus import Message
from services.ports.bus import Bus, respond
from tests.contract.bus_contract import BusContract
from tests.fakes.bus import FakeBus, matches
from tests.fakes.clock import FakeClock


class TestFakeBus(BusContract):
    @pytest.fixture
    async def bus(self) -> AsyncIterator[FakeBus]:
        bus = FakeBus()
        yield bus
        await bus.close()

    async def close(self, bus: Bus) -> None:
        assert isinstance(bus, FakeBus)
        await bus.close()


def test_subject_matching() -> None:
    assert matches("a.*.c", "a.b.c") and not matches("a.*.c", "a.b.b.c")
    assert matches(">", "a") and matches("a.>", "a.b.c") and not matches("a.>", "a")
    assert not matches("a.b", "a.b.c") and not matches("a.b.c", "a.b")


async def test_bad_subjects_are_refused() -> None:
    bus = FakeBus()
    for subject in ("", "a..b", "a b", "a.*", "a.>"):
        with pytest.raises(ValueError, match="subject"):
            await bus.publish(subject, b"")
    with pytest.raises(ValueError, match="last token"):
        await bus.subscribe("a.>.b", _ignore)


async def test_settled_waits_for_handlers_and_what_they_publish() -> None:
    bus, seen = FakeBus(), []

    async def relay(msg: Message) -> None:
        await bus.publish("b", msg.data)

    async def keep(msg: Message) -> None:
        seen.append(msg.data)

    await bus.subscribe("a", relay)
    await bus.subscribe("b", keep)
    for i in range(5):
        await bus.publish("a", bytes([i]))
    await bus.settled()
    assert seen == [bytes([i]) for i in range(5)]
    assert bus.subjects("b") == ["b"] * 5


async def test_request_timeouts_run_on_the_fake_clock() -> None:
    clock = FakeClock()
    bus = FakeBus(clock=clock)
    await bus.subscribe("silent", _ignore)
    asking = asyncio.create_task(bus.request("silent", b"", timeout=30))
    await clock.sleepers(1)
    await clock.advance(29.9)
    assert not asking.done()
    await clock.advance(0.1)
    with pytest.raises(TimeoutError, match="within 30s"):
        await asking

    async def answer(msg: Message) -> None:
        await respond(bus, msg, b"yes")

    await bus.subscribe("asked", answer)
    assert (await bus.request("asked", b"", timeout=30)).data == b"yes"  # no time passes


async def _ignore(msg: Message) -> None:
    return None
