"""One contract for `Topic` (one core pub/sub subject): the in-memory fake and `CoreTopic` on a
real nats-server both subclass it. Subclasses provide `topic` and `other` (the same subject
as another process sees it)."""

from __future__ import annotations

import asyncio

from services.ports.topics import Topic


class Heard:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.changed = asyncio.Event()

    async def __call__(self, data: bytes) -> None:
        self.data.append(data)
        self.changed.set()

    async def until(self, count: int) -> list[bytes]:
        async with asyncio.timeout(10):
            while len(self.data) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.data


class TopicContract:
    async def test_every_subscriber_hears_what_is_published_in_order(
        self, topic: Topic, other: Topic
    ) -> None:
        mine, theirs = Heard(), Heard()
        await topic.subscribe(mine)
        await other.subscribe(theirs)
        for n in range(3):
            await topic.publish(b"m%d" % n)
        assert await mine.until(3) == [b"m0", b"m1", b"m2"]
        assert await theirs.until(3) == [b"m0", b"m1", b"m2"]

    async def test_nothing_is_heard_before_subscribing_or_after_unsubscribing(
        self, topic: Topic, other: Topic
    ) -> None:
        heard, marker = Heard(), Heard()
        await topic.publish(b"too early")
        sub = await other.subscribe(heard)
        await other.subscribe(marker)
        await topic.publish(b"heard")
        assert await heard.until(1) == [b"heard"]
        await sub.unsubscribe()
        await topic.publish(b"too late")
        await topic.publish(b"marker")
        await marker.until(3)  # the marker came after "too late": it would have arrived
        assert heard.data == [b"heard"]
