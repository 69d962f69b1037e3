"""Our NATS client with JetStream on a real nats-server: publishes answered by PubAcks (with
expected-sequence conflicts), and pull consumers with every kind of acknowledgement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.nats import jsapi
from adapters.nats.client import Client, Options
from adapters.nats.fetch import PullConsumer
from adapters.nats.message import JetStreamError, Msg, NotJetStream, parse_pub_ack
from adapters.nats.server import NatsServerProcess

STREAM = "TEST"
WRONG_LAST_SEQUENCE = 10071


@pytest.fixture
async def js(nats_server: NatsServerProcess) -> AsyncIterator[Client]:
    nc = await Client.connect(Options(url=nats_server.url, name="test"))
    config = {"name": STREAM, "subjects": ["t.>"], "storage": "memory", "allow_direct": True}
    await jsapi.add_stream(nc, config)
    try:
        yield nc
    finally:
        await nc.close()


def expect(seq: int) -> dict[str, str]:
    return {"Nats-Expected-Last-Subject-Sequence": str(seq)}


async def test_pipelined_publishes_are_acknowledged_in_order(js: Client) -> None:
    futures = [js.request(f"t.agg.{i % 10}", f"e{i}".encode()) for i in range(100)]
    acks = [parse_pub_ack("t", await f) for f in futures]
    assert [a.seq for a in acks] == list(range(1, 101))
    assert {a.stream for a in acks} == {STREAM} and not any(a.duplicate for a in acks)


async def test_the_expected_last_subject_sequence_is_enforced(js: Client) -> None:
    first = parse_pub_ack("t.a", await js.request("t.a", b"1", headers=expect(0)))
    js.request("t.b", b"other subject")  # moves the stream, not t.a
    second = parse_pub_ack("t.a", await js.request("t.a", b"2", headers=expect(first.seq)))
    assert second.seq == first.seq + 2
    with pytest.raises(JetStreamError) as conflict:
        parse_pub_ack("t.a", await js.request("t.a", b"stale", headers=expect(first.seq)))
    assert conflict.value.err_code == WRONG_LAST_SEQUENCE
    assert "wrong last sequence" in conflict.value.description


async def test_a_message_id_is_stored_once(js: Client) -> None:
    headers = {"Nats-Msg-Id": "event-1", **expect(0)}
    first = parse_pub_ack("t.once", await js.request("t.once", b"x", headers=headers))
    again = parse_pub_ack(
        "t.once", await js.request("t.once", b"x", headers={"Nats-Msg-Id": "event-1"})
    )
    assert again.duplicate and again.seq == first.seq


async def durable(js: Client, name: str = "workers", **config: object) -> PullConsumer:
    await jsapi.add_consumer(
        js, STREAM,
        {"durable_name": name, "ack_policy": "explicit", "filter_subject": "t.jobs",
         "ack_wait": 30_000_000_000, **config},
    )  # fmt: skip
    return PullConsumer(js, STREAM, name)


async def publish_jobs(js: Client, n: int) -> None:
    for future in [js.request("t.jobs", f"job{i}".encode()) for i in range(n)]:
        parse_pub_ack("t.jobs", await future)


async def ack_pending(js: Client, consumer: str = "workers") -> int:
    await js.flush()  # our acks are on the wire before we ask
    info = await jsapi.consumer_info(js, STREAM, consumer)
    return int(info["num_ack_pending"])


async def test_fetch_takes_what_is_there_up_to_n_and_acks_settle_it(js: Client) -> None:
    puller = await durable(js)
    await publish_jobs(js, 7)
    first = await puller.fetch(5, wait=5.0)
    assert [m.data for m in first] == [f"job{i}".encode() for i in range(5)]
    rest = await puller.fetch(5, wait=5.0)
    assert [m.data for m in rest] == [b"job5", b"job6"]
    delivery = rest[-1].delivery()
    assert (delivery.stream, delivery.consumer, delivery.stream_seq) == (STREAM, "workers", 7)
    assert (delivery.delivered, delivery.pending) == (1, 0)
    for msg in first + rest:
        msg.ack()
    assert await ack_pending(js) == 0
    assert await puller.fetch(5, wait=0.2) == []  # nothing left: the pull ends empty


async def test_a_waiting_fetch_returns_when_a_message_arrives(js: Client) -> None:
    puller = await durable(js)
    waiting = asyncio.ensure_future(puller.fetch(10, wait=20.0))
    await js.flush()
    await publish_jobs(js, 1)
    got = await asyncio.wait_for(waiting, 10.0)  # well before the pull's 20 s
    assert [m.data for m in got] == [b"job0"]


async def test_nak_redelivers_and_counts_the_delivery(js: Client) -> None:
    puller = await durable(js)
    await publish_jobs(js, 1)
    (msg,) = await puller.fetch(1, wait=5.0)
    msg.nak()
    (again,) = await puller.fetch(1, wait=5.0)
    assert again.data == b"job0" and again.delivery().delivered == 2
    again.nak(delay=1.5)
    assert await puller.fetch(1, wait=0.2) == []  # held back by the delay
    (third,) = await puller.fetch(1, wait=10.0)
    assert third.delivery().delivered == 3
    third.term()
    assert await ack_pending(js) == 0


async def test_in_progress_holds_a_message_past_its_ack_wait(js: Client) -> None:
    puller = await durable(js, ack_wait=1_000_000_000)
    await publish_jobs(js, 1)
    (msg,) = await puller.fetch(1, wait=5.0)
    for _ in range(6):  # 1.8 s in all, past the 1 s ack wait
        msg.in_progress()
        assert await puller.fetch(1, wait=0.3) == []
    msg.ack()
    assert await ack_pending(js) == 0


async def test_unacked_is_redelivered_after_the_ack_wait(js: Client) -> None:
    puller = await durable(js, ack_wait=500_000_000)
    await publish_jobs(js, 1)
    (msg,) = await puller.fetch(1, wait=5.0)
    (again,) = await puller.fetch(1, wait=10.0)
    assert again.data == msg.data and again.delivery().delivered == 2


async def test_a_conflict_ends_the_pull_and_says_why(js: Client) -> None:
    puller = await durable(js, max_batch=1)
    await publish_jobs(js, 3)
    # The first pull asks for 3, more than the consumer allows: refused with a 409, which
    # ends it; the second (one message, waiting) is within the limit.
    got = await puller.fetch(3, wait=5.0)
    assert [m.data for m in got] == [b"job0"]
    assert puller.last_status is not None and puller.last_status[0] == 409
    assert "MaxRequestBatch" in puller.last_status[1].replace(" ", "")


async def test_an_ephemeral_consumer_is_pulled_the_same(js: Client) -> None:
    await publish_jobs(js, 3)
    config = {"ack_policy": "none", "deliver_policy": "by_start_sequence", "opt_start_seq": 2}
    name = await jsapi.add_consumer(js, STREAM, {**config, "inactive_threshold": 60_000_000_000})
    puller = PullConsumer(js, STREAM, name)
    got = await puller.fetch(10, wait=5.0)
    assert [m.data for m in got] == [b"job1", b"job2"]
    assert [m.delivery().pending for m in got] == [1, 0]
    puller.stop()
    await jsapi.delete_consumer(js, STREAM, name)


async def test_acking_a_plain_message_is_refused(js: Client) -> None:
    got: list[Msg] = []
    js.subscribe("plain", got.append)
    await js.flush()
    js.publish("plain", b"x")
    await js.flush()
    with pytest.raises(NotJetStream):
        got[0].ack()


async def test_direct_gets_find_stored_messages_or_none(js: Client) -> None:
    for i, subject in enumerate(["t.x", "t.y", "t.x"]):
        parse_pub_ack(subject, await js.request(subject, f"m{i}".encode(), headers={"K": str(i)}))
    last = await jsapi.direct_get(js, STREAM, {"last_by_subj": "t.x"})
    assert last is not None and last.data == b"m2"
    assert (last.headers["Nats-Sequence"], last.headers["Nats-Subject"], last.headers["K"]) == (
        "3",
        "t.x",
        "2",
    )
    after = await jsapi.direct_get(js, STREAM, {"seq": 2, "next_by_subj": "t.x"})
    assert after is not None and after.headers["Nats-Sequence"] == "3"
    assert await jsapi.direct_get(js, STREAM, {"last_by_subj": "t.none"}) is None
    assert (await jsapi.stream_info(js, STREAM))["state"]["messages"] == 3
