"""Our NATS client with JetStream on a real nats-server: publishes answered by PubAcks (with
expected-sequence conflicts), and pull consumers with every kind of acknowledgement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
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


async def publish(js: Client, *bodies: bytes) -> None:
    for future in [js.request("t.jobs", body) for body in bodies]:
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


async def test_each_fetch_is_one_pull_request_waiting_or_not(js: Client) -> None:
    puller = await durable(js)
    requests: list[dict[str, object]] = []
    js.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.workers", lambda m: requests.append(
        orjson.loads(m.data)))  # fmt: skip
    await js.flush()
    waiting = asyncio.ensure_future(puller.fetch(5, wait=20.0))  # nothing there: it waits
    await js.flush()
    await publish_jobs(js, 1)
    assert [m.data for m in await asyncio.wait_for(waiting, 10.0)] == [b"job0"]
    await publish(js, b"a", b"b", b"c")
    assert [m.data for m in await puller.fetch(5, wait=20.0)] == [b"a", b"b", b"c"]
    await js.flush()
    # one pull each, which the server ends as soon as it has given what there is
    assert requests == [{"batch": 5, "no_wait": True, "expires": 20_000_000_000}] * 2


async def test_a_fetch_refused_for_pulls_that_came_first_waits_for_its_own(js: Client) -> None:
    """With messages there that earlier pulls are owed, the server ends a `no_wait` pull at
    once (408 Requests Pending); the fetch then waits with a pull of 1 instead of returning
    empty (its caller would ask again at once, in a loop)."""
    puller = await durable(js, max_ack_pending=1)
    await publish_jobs(js, 1)
    (held,) = await puller.fetch(1, wait=5.0)  # unacked: the next message is pending
    owed: list[Msg] = []
    js.subscribe("earlier.pull", lambda m: (owed.append(m), m.ack()))
    ours_asked: list[dict[str, object]] = []
    js.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.workers", lambda m: m.reply.startswith(
        "earlier") or ours_asked.append(orjson.loads(m.data)))  # fmt: skip
    earlier = orjson.dumps({"batch": 2, "expires": 30_000_000_000})
    js.publish(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.workers", earlier, reply="earlier.pull")
    await publish(js, b"first owed")  # pending, owed to the earlier pull of 2
    ours = asyncio.ensure_future(puller.fetch(1, wait=20.0))
    await js.flush()
    held.ack()  # the earlier pull takes the owed one, and the next: it asked for 2
    await publish(js, b"second owed", b"ours")
    (got,) = await asyncio.wait_for(ours, 10.0)  # a message, not an empty answer
    assert owed[0].data == b"first owed" and got.data in (b"second owed", b"ours")
    wait = 20_000_000_000
    assert ours_asked == [
        {"batch": 1, "no_wait": True, "expires": wait},
        {"batch": 1, "expires": wait},
    ]  # refused at once, then waited
    assert puller.last_status is None  # a 408 is no conflict


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
    # A pull for 3, more than the consumer allows: refused with a 409, which ends it at once
    # (not at its expiry) and says why; a pull within the limit is served.
    assert await puller.fetch(3, wait=30.0) == []
    assert puller.last_status is not None and puller.last_status[0] == 409
    assert "MaxRequestBatch" in puller.last_status[1].replace(" ", "")
    got = await puller.fetch(1, wait=5.0)
    assert [m.data for m in got] == [b"job0"]


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
