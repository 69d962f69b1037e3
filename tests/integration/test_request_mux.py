"""Replies to our JetStream publishes: handed over directly, or read from the queue where
nats-py's subscription has another shape; both give every publish its own answer."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.nats import direct, requests
from adapters.nats.requests import JetStreamPublisher, PublishUnavailable
from tests.polling import until


async def publish_many(nc: NATS, count: int) -> list[int]:
    publisher = JetStreamPublisher(nc)
    try:
        answers = await asyncio.gather(
            *(
                publisher.publish(f"baker.jobs.status.job-{i}", b"{}", {"Nats-Msg-Id": f"m{i}"})
                for i in range(count)
            )
        )
    finally:
        await publisher.close()
    return sorted(seq for seq, duplicate in answers if not duplicate)


async def test_replies_are_handed_over_directly(provisioned: NATS) -> None:
    nc = provisioned
    publisher = JetStreamPublisher(nc)
    await publisher.publish("baker.jobs.status.job-a", b"{}", {"Nats-Msg-Id": "a"})
    assert isinstance(publisher.mux._sub._pending_queue, direct._Handoff)
    await publisher.close()
    assert await publish_many(nc, 200) == list(range(2, 202))


async def test_without_direct_delivery_the_queue_is_read(
    provisioned: NATS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "deliver_directly", lambda sub, deliver: False)
    assert await publish_many(provisioned, 200) == list(range(1, 201))


async def test_a_failing_receiver_does_not_break_the_connection(nc: NATS) -> None:
    got: list[str] = []

    def deliver(msg: Msg) -> None:
        got.append(msg.subject)
        raise RuntimeError("receiver bug")

    sub = await nc.subscribe("probe.>")
    assert direct.deliver_directly(sub, deliver)
    await nc.publish("probe.one", b"x")
    await nc.publish("probe.two", b"x")
    # A flush does not order our own messages' delivery before its PONG: poll instead.
    await until(lambda: len(got) >= 2, "both probes received")
    assert got == ["probe.one", "probe.two"]  # the first failure did not stop the second
    assert nc.is_connected
    assert sub._pending_size == 0
    await sub.unsubscribe()


async def test_publish_all_stores_in_order_and_answers_each(provisioned: NATS) -> None:
    publisher = JetStreamPublisher(provisioned)
    items = [(f"baker.jobs.status.job-{i}", b"{}", {"Nats-Msg-Id": f"p{i}"}) for i in range(5)]
    first = await publisher.publish_all(items)
    again = await publisher.publish_all(items)  # the same ids: stored once
    await publisher.close()
    assert first == [(seq, False) for seq in range(1, 6)]
    assert again == [(seq, True) for seq in range(1, 6)]


async def test_publish_all_gives_up_cleanly_on_a_subject_nobody_stores(
    provisioned: NATS,
) -> None:
    publisher = JetStreamPublisher(provisioned, retry_for=0.3)
    items = [
        ("baker.jobs.status.job-a", b"{}", {"Nats-Msg-Id": "a"}),
        ("nobody.stores.this", b"{}", None),
        ("baker.jobs.status.job-b", b"{}", {"Nats-Msg-Id": "b"}),
    ]
    with pytest.raises(PublishUnavailable, match=r"nobody\.stores\.this"):
        await publisher.publish_all(items)
    assert publisher.mux._pending == {}
    await publisher.close()
