"""One contract for the inbox port (`services.ports.inbox`): the in-memory queue and the
JetStream pull consumer `brain-tasks` both subclass it."""

from __future__ import annotations

import abc
from collections.abc import Mapping

from services.ports.inbox import Delivery, Inbox
from tests.polling import until

SUBJECT = "baker.tasks.status.task-1"


class InboxContract(abc.ABC):
    """Subclasses provide the `inbox` fixture and `put`."""

    @abc.abstractmethod
    async def put(self, data: bytes, headers: Mapping[str, str] | None = None) -> None:
        """Add a message on `SUBJECT` to the queue behind the inbox."""

    async def fetch_all(self, inbox: Inbox, count: int) -> list[Delivery]:
        got: list[Delivery] = []

        async def more() -> bool:
            got.extend(await inbox.fetch(count - len(got), 0.2))
            return len(got) >= count

        await until(more, f"{count} deliveries")
        return got

    async def test_fetch_hands_out_what_was_put_in_order(self, inbox: Inbox) -> None:
        await self.put(b"one", {"traceparent": "00-x-y-01"})
        await self.put(b"two")
        first, second = await self.fetch_all(inbox, 2)
        assert (first.subject, first.data, first.deliveries) == (SUBJECT, b"one", 1)
        assert first.headers is not None and first.headers["traceparent"] == "00-x-y-01"
        assert second.data == b"two" and second.sequence > first.sequence
        await first.ack()
        await second.ack()
        assert await inbox.fetch(10, 0.05) == []

    async def test_a_fetch_takes_no_more_than_its_batch(self, inbox: Inbox) -> None:
        for i in range(5):
            await self.put(str(i).encode())
        await until(lambda: self.fetch_count(inbox, 2), "a first batch")
        # What is left is still there for the next fetch.
        rest = await self.fetch_all(inbox, 3)
        assert len(rest) == 3

    async def fetch_count(self, inbox: Inbox, batch: int) -> bool:
        got = await inbox.fetch(batch, 0.2)
        assert len(got) <= batch
        for d in got:
            await d.ack()
        return len(got) == batch

    async def test_a_nak_hands_it_out_again_counting_the_delivery(self, inbox: Inbox) -> None:
        await self.put(b"retry me")
        [first] = await self.fetch_all(inbox, 1)
        await first.nak()
        [again] = await self.fetch_all(inbox, 1)
        assert (again.data, again.sequence, again.deliveries) == (b"retry me", first.sequence, 2)
        await again.ack()

    async def test_term_removes_it_for_good(self, inbox: Inbox) -> None:
        await self.put(b"poison")
        await self.put(b"fine")
        poison, fine = await self.fetch_all(inbox, 2)
        await poison.term()
        await fine.ack()
        assert await inbox.fetch(10, 0.2) == []

    async def test_an_empty_queue_answers_nothing_after_the_wait(self, inbox: Inbox) -> None:
        assert await inbox.fetch(5, 0.05) == []
