"""The JetStream publisher on our client: every publish gets its own PubAck, pipelined ones are
stored in order and once, a refusal is never retried, and silence is retried until it gives up
naming the subject, leaving nothing waiting. (A lost PubAck retried with the same id and
recognised as a duplicate: `test_event_store_resilience.py`.)"""

from __future__ import annotations

import asyncio

import pytest

from adapters.nats.client import Client
from adapters.nats.publisher import JetStreamError, JetStreamPublisher, PublishUnavailable

WRONG_LAST_SEQUENCE = 10071


async def test_concurrent_publishes_each_get_their_own_answer(provisioned: Client) -> None:
    publisher = JetStreamPublisher(provisioned)
    acks = await asyncio.gather(
        *(
            publisher.publish(f"baker.jobs.status.job-{i}", b"{}", {"Nats-Msg-Id": f"m{i}"})
            for i in range(200)
        )
    )
    assert sorted(a.seq for a in acks) == list(range(1, 201))
    assert not any(a.duplicate for a in acks) and publisher.retries == 0


async def test_publish_all_stores_in_order_and_once(provisioned: Client) -> None:
    publisher = JetStreamPublisher(provisioned)
    items = [(f"baker.jobs.status.job-{i}", b"{}", {"Nats-Msg-Id": f"p{i}"}) for i in range(5)]
    first = await publisher.publish_all(items)
    again = await publisher.publish_all(items)  # the same ids: stored once
    assert [(a.seq, a.duplicate) for a in first] == [(seq, False) for seq in range(1, 6)]
    assert [(a.seq, a.duplicate) for a in again] == [(seq, True) for seq in range(1, 6)]


async def test_a_refusal_is_raised_at_once_with_its_code(provisioned: Client) -> None:
    publisher = JetStreamPublisher(provisioned)
    stale = {"Nats-Expected-Last-Subject-Sequence": "7"}  # the subject has no message yet
    with pytest.raises(JetStreamError) as refused:
        await publisher.publish("baker.jobs.status.job-x", b"{}", stale)
    assert refused.value.err_code == WRONG_LAST_SEQUENCE
    assert publisher.retries == 0


async def test_publish_all_gives_up_cleanly_on_a_subject_nobody_stores(
    provisioned: Client,
) -> None:
    publisher = JetStreamPublisher(provisioned, retry_for=0.3)
    items = [
        ("baker.jobs.status.job-a", b"{}", {"Nats-Msg-Id": "a"}),
        ("nobody.stores.this", b"{}", None),
        ("baker.jobs.status.job-b", b"{}", {"Nats-Msg-Id": "b"}),
    ]
    with pytest.raises(PublishUnavailable, match=r"nobody\.stores\.this"):
        await publisher.publish_all(items)
    assert publisher.retries > 0  # no responders is retried, as silence is
    # Nothing is left waiting for an answer (one would hold the drain for its 2 s timeout).
    await asyncio.wait_for(provisioned.drain(), 1.0)


async def test_a_closed_client_is_unavailable_not_retried(provisioned: Client) -> None:
    publisher = JetStreamPublisher(provisioned)
    await provisioned.close()
    with pytest.raises(PublishUnavailable, match="closed"):
        await publisher.publish("baker.jobs.status.job-c", b"{}")
    assert publisher.retries == 0
