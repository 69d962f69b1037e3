"""The ordered reader on a real nats-server: a stream read in order from a sequence (or from
each subject's last message), going on where it left off after a server restart and after the
server dropped its consumer, nothing lost and nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.message import parse_pub_ack
from adapters.nats.reader import OrderedReader
from adapters.nats.server import NatsServerProcess
from tests.polling import until

STREAM = "READ"


@pytest.fixture
async def js(nc: Client) -> AsyncIterator[Client]:
    await jsapi.add_stream(nc, {"name": STREAM, "subjects": ["r.>"], "storage": "file"})
    yield nc


async def put(nc: Client, *subjects: str) -> list[int]:
    return [parse_pub_ack(s, await nc.request(s, s.encode())).seq for s in subjects]


async def read(reader: OrderedReader, n: int) -> list[tuple[int, int, str]]:
    """`n` messages as (stream seq, pending after it, subject), waiting for them if need be."""
    out: list[tuple[int, int, str]] = []
    while len(out) < n:
        got = await reader.fetch(n - len(out), wait=5.0)
        assert got, f"only {len(out)} of {n} messages came"
        out += [(seq, pending, msg.subject) for seq, pending, msg in got]
    return out


async def test_a_stream_is_read_in_order_from_a_sequence(js: Client) -> None:
    await put(js, "r.a", "r.b", "r.a", "r.c")
    reader = OrderedReader(js, STREAM, start_seq=2)
    assert await read(reader, 3) == [(2, 2, "r.b"), (3, 1, "r.a"), (4, 0, "r.c")]
    assert await reader.fetch(10, wait=0.2) == []
    await put(js, "r.d")
    assert await read(reader, 1) == [(5, 0, "r.d")]  # and then what is stored later
    await reader.close()


async def test_from_each_subject_s_last_message_then_every_change(js: Client) -> None:
    await put(js, "r.k.1", "r.k.2", "r.k.1", "r.other")
    reader = OrderedReader(js, STREAM, start_seq=None, filter_subject="r.k.*")
    assert [(s, subj) for s, _, subj in await read(reader, 2)] == [(2, "r.k.2"), (3, "r.k.1")]
    await put(js, "r.k.2")
    assert [(s, subj) for s, _, subj in await read(reader, 1)] == [(5, "r.k.2")]
    await reader.close()


async def test_a_server_restart_loses_nothing_and_repeats_nothing(
    js: Client, nats_server: NatsServerProcess
) -> None:
    await put(js, *(f"r.{i}" for i in range(5)))
    reader = OrderedReader(js, STREAM)
    assert [seq for seq, _, _ in await read(reader, 3)] == [1, 2, 3]
    reconnects = js.reconnects
    nats_server.restart()
    await until(lambda: js.is_connected and js.reconnects > reconnects, "reconnected")
    await put(js, "r.5", "r.6")
    assert [seq for seq, _, _ in await read(reader, 4)] == [4, 5, 6, 7]
    await reader.close()


async def test_a_consumer_the_server_dropped_is_made_again_where_it_left_off(js: Client) -> None:
    await put(js, "r.a", "r.b", "r.c")
    reader = OrderedReader(js, STREAM)
    assert [seq for seq, _, _ in await read(reader, 1)] == [1]
    consumers = await jsapi.api(js, f"CONSUMER.NAMES.{STREAM}")
    for name in consumers["consumers"]:  # as an inactive consumer is removed
        await jsapi.delete_consumer(js, STREAM, name)
    assert [seq for seq, _, _ in await read(reader, 2)] == [2, 3]
    await reader.close()
