"""The heartbeat loop on a fake clock and bus: a beat now and every `every` seconds, details
refreshed before every beat but the first, a last beat that says "stopping"."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from services import heartbeat
from services.heartbeat import HEALTH_SUBJECT
from tests.fakes.bus import FakeBus
from tests.fakes.clock import FakeClock
from tests.polling import until


def beats(bus: FakeBus) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in bus.published if m.subject == HEALTH_SUBJECT]


async def test_beats_on_the_clock_and_says_stopping_last() -> None:
    bus, clock, stop = FakeBus(), FakeClock(), asyncio.Event()
    measured = {"n": 0}

    async def refresh() -> None:
        measured["n"] += 1

    beating = asyncio.create_task(
        heartbeat.beat(bus, "worker", "w-1", lambda: dict(measured), stop, 30.0, refresh, clock)
    )
    await clock.sleepers(1)
    await clock.advance(29)
    assert len(beats(bus)) == 1  # the first beat at once, the next not before 30 s
    await clock.advance(61)
    await until(lambda: len(beats(bus)) == 4, "beats at 0, 30, 60 and 90 s")
    await clock.sleepers(1)
    stop.set()
    await beating
    sent = beats(bus)
    assert [b["uptime"] for b in sent] == [0, 30, 60, 90, 90]
    assert [b["details"]["n"] for b in sent] == [0, 1, 2, 3, 4]  # refreshed but the first
    assert [b["status"] for b in sent] == ["up"] * 4 + ["stopping"]
    assert {(b["service"], b["instance"]) for b in sent} == {("worker", "w-1")}


async def test_a_failed_publish_never_stops_the_loop() -> None:
    class Flaky(FakeBus):
        fail = True

        async def publish(self, subject: str, data: bytes = b"", headers: Any = None) -> None:
            if self.fail:
                self.fail = False
                raise ConnectionError("not connected")
            await super().publish(subject, data, headers)

    bus, clock, stop = Flaky(), FakeClock(), asyncio.Event()
    beating = asyncio.create_task(
        heartbeat.beat(bus, "brain", "b-1", dict, stop, 30.0, None, clock)
    )
    await clock.sleepers(1)
    assert beats(bus) == []
    await clock.advance(30)
    await until(lambda: len(beats(bus)) == 1, "the next beat")
    stop.set()
    await beating
    assert [b["status"] for b in beats(bus)] == ["up", "stopping"]
