"""Our NATS client on a real nats-server: publish/subscribe, queue groups, request/reply,
big payloads, and a server restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.nats.client import Client, Options
from adapters.nats.errors import (
    TRANSIENT,
    ConnectionClosed,
    ConnectionLost,
    NoResponders,
    RequestTimeout,
)
from adapters.nats.message import Msg
from adapters.nats.server import NatsServerProcess
from tests.polling import until


@pytest.fixture
async def client(nats_server: NatsServerProcess) -> AsyncIterator[Client]:
    nc = await Client.connect(Options(url=nats_server.url, name="test", reconnect_wait=0.05))
    try:
        yield nc
    finally:
        await nc.close()


async def test_messages_with_and_without_headers_arrive_in_order(client: Client) -> None:
    got: list[Msg] = []
    client.subscribe("greet.*", got.append)
    await client.flush()
    client.publish("greet.plain", b"one")
    client.publish("greet.headed", b"two", headers={"Trace": "abc", "Nats-Msg-Id": "m-1"})
    client.publish("greet.reply", b"", reply="answer.here")
    await until(lambda: len(got) == 3, "three messages")
    assert [(m.subject, m.data, m.reply) for m in got] == [
        ("greet.plain", b"one", ""),
        ("greet.headed", b"two", ""),
        ("greet.reply", b"", "answer.here"),
    ]
    assert got[0].headers == {}
    assert got[1].headers == {"Trace": "abc", "Nats-Msg-Id": "m-1"} and got[1].status is None


async def test_a_queue_group_delivers_each_message_once(client: Client) -> None:
    first: list[Msg] = []
    second: list[Msg] = []
    client.subscribe("work", first.append, queue="pool")
    other = await Client.connect(client.options)
    try:
        other.subscribe("work", second.append, queue="pool")
        await other.flush()
        await client.flush()
        for i in range(200):
            client.publish("work", str(i).encode())
        await until(lambda: len(first) + len(second) == 200, "every message once")
        await client.flush()
        assert sorted(int(m.data) for m in first + second) == list(range(200))
        assert first and second  # both members took some (random choice per message)
    finally:
        await other.close()


async def test_unsubscribed_means_no_more_messages(client: Client) -> None:
    got: list[Msg] = []
    sub = client.subscribe("once", got.append)
    await client.flush()
    client.publish("once", b"a")
    await until(lambda: got, "the first message")
    sub.unsubscribe()
    client.publish("once", b"b")
    await client.flush()
    assert [m.data for m in got] == [b"a"]


async def test_a_failing_callback_is_counted_and_delivery_goes_on(client: Client) -> None:
    got: list[bytes] = []

    def picky(msg: Msg) -> None:
        if msg.data == b"bad":
            raise RuntimeError("cannot take this one")
        got.append(msg.data)

    client.subscribe("picky", picky)
    await client.flush()
    for word in (b"good", b"bad", b"fine"):
        client.publish("picky", word)
    await until(lambda: len(got) == 2, "the good messages")
    assert got == [b"good", b"fine"] and client.errors == 1


async def test_requests_are_answered_and_no_responders_is_its_own_error(client: Client) -> None:
    client.subscribe("echo", lambda m: m.respond(m.data.upper(), headers={"By": "echo"}))
    await client.flush()
    answers = await asyncio.gather(*(client.request("echo", f"n{i}".encode()) for i in range(50)))
    assert [a.data for a in answers] == [f"N{i}".encode() for i in range(50)]
    assert answers[0].headers == {"By": "echo"}
    with pytest.raises(NoResponders):
        await client.request("nobody.listens", b"?")


async def test_an_unanswered_request_times_out(client: Client) -> None:
    client.subscribe("silent", lambda m: None)
    await client.flush()
    with pytest.raises(RequestTimeout):
        await client.request("silent", b"?", timeout=0.2)


async def test_a_one_mebibyte_payload_goes_both_ways(client: Client) -> None:
    assert client.max_payload == 1 << 20
    big = bytes(range(256)) * 4096
    client.subscribe("big", lambda m: m.respond(m.data[::-1]))
    await client.flush()
    answer = await client.request("big", big, timeout=10)
    assert answer.data == big[::-1]
    for too_big in ({}, {"Size": "1048576"}):  # the header block counts
        with pytest.raises(ValueError, match="over the server's maximum"):
            client.publish("big", big[: -1 if too_big else None] + b"!!", headers=too_big)
    assert client.reconnects == 0


async def test_bad_subjects_are_refused_before_they_reach_the_wire(client: Client) -> None:
    for subject in ("", "with space", "tab\there"):
        with pytest.raises(ValueError, match="bad NATS subject"):
            client.publish(subject, b"x")
    with pytest.raises(ValueError, match="bad NATS subject"):
        client.subscribe("a b", lambda m: None)
    await client.flush()  # the connection is still fine


async def test_a_restart_resubscribes_fails_what_was_in_flight_and_sends_what_waited(
    nats_server: NatsServerProcess, client: Client
) -> None:
    got: list[bytes] = []
    client.subscribe("kept", lambda m: got.append(m.data))
    client.subscribe("never.answers", lambda m: None)
    await client.flush()
    in_flight = client.request("never.answers", b"?", timeout=30)

    nats_server.stop()
    with pytest.raises(ConnectionLost) as lost:
        await in_flight
    assert isinstance(lost.value, TRANSIENT)  # a caller may simply send it again
    assert not client.is_connected
    client.publish("kept", b"while down 1")
    client.publish("kept", b"while down 2")

    nats_server.start()
    await until(lambda: len(got) == 2, "what was published while down", timeout=30)
    assert got == [b"while down 1", b"while down 2"]
    assert client.reconnects == 1
    client.subscribe("echo", lambda m: m.respond(m.data))
    answer = await client.request("echo", b"after", timeout=5)
    assert answer.data == b"after"


async def test_closed_means_closed(client: Client) -> None:
    pending = client.request("nobody.yet", b"?", timeout=30)
    await client.close()
    with pytest.raises(ConnectionClosed):
        await pending
    with pytest.raises(ConnectionClosed):
        client.publish("x", b"y")
    with pytest.raises(ConnectionClosed):
        await client.flush()
    assert client.is_closed


async def test_drain_delivers_what_is_in_flight_then_closes(client: Client) -> None:
    got: list[bytes] = []
    client.subscribe("drained", lambda m: got.append(m.data))
    client.subscribe("echo", lambda m: m.respond(m.data))
    await client.flush()
    for i in range(100):
        client.publish("drained", str(i).encode())
    answer = client.request("echo", b"last")
    await client.drain()
    assert len(got) == 100 and (await answer).data == b"last"
    assert client.is_closed
