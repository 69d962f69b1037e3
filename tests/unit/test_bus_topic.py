"""A topic is one subject of the bus: what is published on it reaches its subscribers (and
nothing published on other subjects does), until they unsubscribe."""

from __future__ import annotations

from services.topic import BusTopic
from tests.fakes.bus import FakeBus


async def test_a_topic_carries_its_subject_only_until_unsubscribed() -> None:
    bus = FakeBus()
    topic, other = BusTopic(bus, "baker.system.handoff"), BusTopic(bus, "baker.system.health")
    heard: list[bytes] = []

    async def hear(data: bytes) -> None:
        heard.append(data)

    sub = await topic.subscribe(hear)
    await topic.publish(b"ready")
    await other.publish(b"beat")
    await bus.settled()
    assert heard == [b"ready"]
    assert [(m.subject, m.data) for m in bus.published] == [
        ("baker.system.handoff", b"ready"), ("baker.system.health", b"beat"),
    ]  # fmt: skip
    await sub.unsubscribe()
    await topic.publish(b"clear")
    await bus.settled()
    assert heard == [b"ready"]
