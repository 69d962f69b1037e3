"""The in-memory work queue keeps the inbox port's contract; a nak's delay runs on its clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import pytest

from tests.contract.inbox_contract import SUBJECT, InboxContract
from tests.fakes.clock import FakeClock
from tests.fakes.inbox import FakeInbox, FakeQueue


class TestFakeInbox(InboxContract):
    @pytest.fixture
    async def inbox(self) -> AsyncIterator[FakeInbox]:
        self.queue = FakeQueue()
        inbox = await self.queue.open()
        yield inbox
        await inbox.close()

    async def put(self, data: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.queue.put(SUBJECT, data, headers)


async def test_a_nak_delay_runs_on_the_clock() -> None:
    clock = FakeClock()
    queue = FakeQueue(clock)
    inbox = await queue.open()
    queue.put(SUBJECT, b"later")
    [first] = await inbox.fetch(1, 0)
    await first.nak(delay=2)
    await clock.sleepers(1)
    assert queue.pending == 1 and await inbox.fetch(1, 0) == []
    await clock.advance(2)
    [again] = await inbox.fetch(1, 0)
    assert again.deliveries == 2
    await again.ack()
    assert queue.pending == 0 and [d.data for d in queue.acked] == [b"later"]
    assert [d.deliveries for d in queue.nakked] == [1]
    await asyncio.sleep(0)
