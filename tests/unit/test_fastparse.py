"""The fast read path delivers exactly what nats-py's own parser delivers, for any bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.protocol.parser import Parser

from adapters.nats import fastparse
from adapters.nats.direct import deliver_directly

SUBJECT = st.sampled_from([b"a", b"baker.jobs.status.j1", b"_INBOX.x.7", b"$JS.ACK.S.c.1.2.3.4.0"])
PAYLOAD = st.binary(max_size=40)
HEADERS = st.one_of(
    st.just(b"NATS/1.0\r\nNats-Msg-Id: m1\r\ntraceparent: 00-ab-cd-01\r\n\r\n"),
    st.just(b"NATS/1.0\r\n\r\n"),
    st.just(b"NATS/1.0 404 No Messages\r\n\r\n"),
    st.just(b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n"),
    st.just(b"NATS/1.0 100 Idle Heartbeat\r\n\r\n"),
    st.just(b"NATS/1.0\r\nBad Name: x\r\nOk: y\r\n\r\n"),
)
# 2: max 2 messages, 3: tiny byte limit, 4: 2 queued at most, 5: direct delivery, 99: none
SIDS = st.sampled_from([1, 2, 3, 4, 5, 99])


@st.composite
def operation(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["msg", "hmsg", "ping", "pong", "ok", "tabs"]))
    subject, sid, payload = draw(SUBJECT), draw(SIDS), draw(PAYLOAD)
    reply = draw(st.sampled_from([b"", b"_INBOX.r.1"]))
    words = [subject, str(sid).encode()] + ([reply] if reply else [])
    size = str(len(payload)).encode()
    if kind == "msg":
        return b"MSG " + b" ".join([*words, size]) + b"\r\n" + payload + b"\r\n"
    if kind == "tabs":  # legal whitespace nats-py's regexes accept
        return b"MSG\t" + b"\t".join([*words, size]) + b"\r\n" + payload + b"\r\n"
    if kind == "hmsg":
        hdr = draw(HEADERS)
        sizes = [str(len(hdr)).encode(), str(len(hdr) + len(payload)).encode()]
        return b"HMSG " + b" ".join(words + sizes) + b"\r\n" + hdr + payload + b"\r\n"
    return {"ping": b"PING\r\n", "pong": b"PONG\r\n", "ok": b"+OK\r\n"}[kind]


class _Log(asyncio.Queue[Any]):
    def __init__(self, log: list[Any], sid: int, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self._log, self._sid = log, sid

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        self._log.append(("msg", self._sid, item.subject, item.reply, item.data, item.headers))


def _client(log: list[Any]) -> Client:
    nc = Client()

    async def ping() -> None:
        log.append(("ping",))

    async def pong() -> None:
        log.append(("pong",))

    async def error(exc: Exception) -> None:
        log.append(("error", type(exc).__name__))

    nc._process_ping = ping  # type: ignore[method-assign]
    nc._process_pong = pong  # type: ignore[method-assign]
    nc._error_cb = error
    for sid, kwargs in ((1, {}), (2, {"max_msgs": 2}), (3, {"pending_bytes_limit": 30}),
                        (4, {"pending_msgs_limit": 2})):  # fmt: skip
        sub = Subscription(nc, sid, "x", **kwargs)  # type: ignore[arg-type]
        sub._pending_queue = _Log(log, sid, sub._pending_queue.maxsize)
        nc._subs[sid] = sub
    direct = Subscription(nc, 5, "x")  # type: ignore[arg-type]
    assert deliver_directly(direct, lambda m: log.append(("direct", m.subject, m.data, m.headers)))
    nc._subs[5] = direct
    return nc


async def _feed(parse: Any, chunks: list[bytes]) -> tuple[list[Any], dict[str, Any]]:
    log: list[Any] = []
    nc = _client(log)
    parser = Parser(nc)
    try:
        for chunk in chunks:
            await parse(parser, chunk)
    except Exception as exc:  # what nats-py raises, ProtocolError or not
        log.append(("raised", type(exc).__name__, str(exc)))
    subs = {sid: (s._received, s._pending_size) for sid, s in nc._subs.items()}
    state = {"stats": dict(nc.stats), "subs": subs, "buf": bytes(parser.buf)}
    return log, state


def _chunks(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(stream)) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


def test_nats_py_still_has_the_parts_replaced() -> None:
    assert fastparse.replicable()


@settings(max_examples=300, deadline=None)
@given(st.lists(operation(), max_size=12), st.lists(st.integers(0, 400), max_size=6))
def test_same_deliveries_as_nats_py(ops: list[bytes], cuts: list[int]) -> None:
    chunks = _chunks(b"".join(ops), cuts)
    theirs = asyncio.run(_feed(fastparse.original_parse(), chunks))
    ours = asyncio.run(_feed(fastparse.parse, chunks))
    assert ours == theirs


@pytest.mark.parametrize(
    "stream",
    [
        b"MSG a 1 x5\r\nhello\r\n",  # size not a number
        b"MSG a one 5\r\nhello\r\n",  # sid not a number
        b"MSG a 1 2 3 4\r\nhi\r\n",  # too many words
        b"HMSG a 1 40 5\r\nhello\r\n",  # header larger than the message
        b"NOPE\r\n",
    ],
)
def test_malformed_lines_fail_as_in_nats_py(stream: bytes) -> None:
    theirs = asyncio.run(_feed(fastparse.original_parse(), [stream]))
    ours = asyncio.run(_feed(fastparse.parse, [stream]))
    assert ours == theirs


@pytest.fixture
def slow_path_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sids of the messages that reached nats-py's `_process_msg`."""
    calls: list[int] = []
    original = Client._process_msg

    async def counted(self: Client, sid: int, *args: Any) -> None:
        calls.append(sid)
        await original(self, sid, *args)

    monkeypatch.setattr(Client, "_process_msg", counted)
    return calls


def test_the_common_case_takes_the_fast_path(slow_path_calls: list[int]) -> None:
    """An ordinary delivery never reaches nats-py's `_process_msg` (else nothing is gained)."""
    hdr = b"NATS/1.0\r\nNats-Msg-Id: m1\r\n\r\n"
    stream = b"HMSG s 1 r %d %d\r\n%shi\r\nMSG s 1 2\r\nok\r\n" % (len(hdr), len(hdr) + 2, hdr)
    log, state = asyncio.run(_feed(fastparse.parse, [stream]))
    assert slow_path_calls == []
    assert [entry[4] for entry in log] == [b"hi", b"ok"]
    assert log[0][5] == {"Nats-Msg-Id": "m1"}
    assert state["stats"]["in_msgs"] == 2


def test_a_message_split_across_reads_keeps_the_rest_on_the_fast_path(
    slow_path_calls: list[int],
) -> None:
    """Big batches arrive in several reads, most of which end inside a message: the messages
    after that one must not all fall to nats-py's parser on the next read."""
    payloads = (b"first", b"second", b"third")
    stream = b"".join(b"MSG s 1 %d\r\n%s\r\n" % (len(p), p) for p in payloads)
    for cut in (3, 12, 14, 20):  # in the line, in the payload, at its CRLF, in the next line
        log, state = asyncio.run(_feed(fastparse.parse, [stream[:cut], stream[cut:]]))
        assert [entry[4] for entry in log] == [b"first", b"second", b"third"], cut
        assert state["buf"] == b""
    assert slow_path_calls == []


async def _feed_from_socket(chunks: list[bytes], loop_runs: list[bool]) -> tuple[list[Any], Any]:
    """The chunks arrive at the socket protocol's hook; nats-py's read loop runs after some of
    them (`loop_runs`) and at the end, reading what the hook left it."""
    log: list[Any] = []
    nc = _client(log)
    parser = Parser(nc)
    parser._baker_busy = False
    reader = asyncio.StreamReader()
    hook = fastparse._socket_hook(parser, reader, reader.feed_data)

    async def read_loop_turn() -> None:
        if reader._buffer:
            data = bytes(reader._buffer)
            reader._buffer.clear()
            await fastparse.parse(parser, data)

    try:
        for n, chunk in enumerate(chunks):
            hook(chunk)
            if n < len(loop_runs) and loop_runs[n]:
                await read_loop_turn()
        await read_loop_turn()
    except Exception as exc:
        log.append(("raised", type(exc).__name__, str(exc)))
    subs = {sid: (s._received, s._pending_size) for sid, s in nc._subs.items()}
    return log, {"stats": dict(nc.stats), "subs": subs, "buf": bytes(parser.buf)}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(operation(), max_size=12),
    st.lists(st.integers(0, 400), max_size=6),
    st.lists(st.booleans(), max_size=7),
)
def test_parsing_from_the_socket_delivers_what_nats_py_delivers(
    ops: list[bytes], cuts: list[int], loop_runs: list[bool]
) -> None:
    chunks = _chunks(b"".join(ops), cuts)
    theirs = asyncio.run(_feed(fastparse.original_parse(), chunks))
    ours = asyncio.run(_feed_from_socket(chunks, loop_runs))
    assert ours == theirs


def test_ordinary_reads_never_wake_the_read_loop() -> None:
    payloads = (b"first", b"second", b"third")
    stream = b"".join(b"MSG s 1 %d\r\n%s\r\n" % (len(p), p) for p in payloads)
    log, state = asyncio.run(_feed_from_socket([stream[:14], stream[14:]], [False]))
    assert [entry[4] for entry in log] == list(payloads)
    assert state["buf"] == b""


async def test_what_needs_nats_py_goes_to_the_read_loop_in_order() -> None:
    """A PING between two messages: the first is delivered by the hook, the rest by the loop."""
    stream = b"MSG s 1 1\r\na\r\nPING\r\nMSG s 1 1\r\nb\r\n"
    log: list[Any] = []
    nc = _client(log)
    parser = Parser(nc)
    parser._baker_busy = False
    reader = asyncio.StreamReader()
    fastparse._socket_hook(parser, reader, reader.feed_data)(stream)
    assert [entry[0] for entry in log] == ["msg"]  # delivered from the socket
    assert bytes(reader._buffer) == b"PING\r\nMSG s 1 1\r\nb\r\n"  # left to the read loop
