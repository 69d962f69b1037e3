"""Admission to the job queue: room kept for reports, one read of the stream per burst."""

from __future__ import annotations

import asyncio

import pytest

from adapters.nats.job_queue import QueueFull
from services.brain.admission import Admission, reserve_for


class Fill:
    def __init__(self, messages: int, limit: int) -> None:
        self.messages, self.limit, self.reads = messages, limit, 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def fill(self) -> tuple[int, int]:
        self.reads += 1
        await self.gate.wait()
        return self.messages, self.limit


async def test_a_burst_of_admissions_shares_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("services.brain.admission.time.monotonic", lambda: clock[0])
    fill = Fill(0, 10_000)
    fill.gate.clear()  # the read is slow: everyone else queues behind it
    admission = Admission(fill, refresh_every=0.25)
    burst = [asyncio.create_task(admission.admit()) for _ in range(500)]
    while fill.reads == 0:  # let the first caller start its read
        assert not any(t.done() for t in burst)
        await asyncio.sleep(0)
    clock[0] += 0.2  # a slow read, yet within `refresh_every`
    fill.gate.set()
    await asyncio.gather(*burst)
    assert fill.reads == 1


async def test_admits_up_to_the_reserve_then_refuses() -> None:
    fill = Fill(0, 100)
    admission = Admission(fill, refresh_every=3600)
    for _ in range(100 - reserve_for(100)):
        await admission.admit()
    with pytest.raises(QueueFull, match="kept for status messages"):
        await admission.admit()
    assert admission.refused == 1
    assert fill.reads == 2  # the refusal looked again before saying no


async def test_room_that_appears_is_seen_on_the_next_read() -> None:
    fill = Fill(90, 100)
    admission = Admission(fill, refresh_every=3600)
    with pytest.raises(QueueFull):
        await admission.admit()
    fill.messages = 10  # the ingest drained the stream
    await admission.admit()
    assert fill.reads == 2
