"""The NATS protocol module: encoders against nats-py's (a reference oracle only), and the
parser against any cut of the stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.protocol import command as oracle

from adapters.nats import protocol
from adapters.nats.protocol import Err, Info, Msg, Parser, ProtocolError

tokens = st.text("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_$", min_size=1, max_size=12)
subjects = st.lists(tokens, min_size=1, max_size=5).map(".".join)
header_names = st.text("abcdefgXYZ0123-_.!#$%&'*+^`|~", min_size=1, max_size=20)
# Any text a header can carry: UTF-8 (no lone surrogates), no line breaks.
header_values = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40)


def canonical(cmd: bytes) -> bytes:
    """The command with its control line's blanks collapsed: nats-py writes `PUB s  5`
    (an empty reply between two spaces) and `UNSUB 1 ` where the server reads the same
    command as `PUB s 5` and `UNSUB 1`."""
    line, _, rest = cmd.partition(b"\r\n")
    return b" ".join(line.split()) + b"\r\n" + rest


@given(subjects, st.binary(max_size=300), st.one_of(st.just(""), subjects))
def test_pub_is_what_nats_py_sends(subject: str, payload: bytes, reply: str) -> None:
    ours = protocol.encode_pub(subject, payload, reply)
    assert ours == canonical(oracle.pub_cmd(subject, reply, payload))
    if reply:  # no blank to collapse: byte for byte
        assert ours == oracle.pub_cmd(subject, reply, payload)


def nats_py_header_block(headers: dict[str, str]) -> bytes:
    """The header block nats-py builds in `publish` (nats/aio/client.py), for the valid
    names and values we accept."""
    block = b"NATS/1.0\r\n"
    for name, value in headers.items():
        block += name.encode() + b": " + value.strip().encode() + b"\r\n"
    return block + b"\r\n"


@given(
    subjects,
    st.binary(max_size=300),
    st.one_of(st.just(""), subjects),
    st.dictionaries(header_names, header_values, min_size=1, max_size=4),
)
def test_hpub_is_what_nats_py_sends(
    subject: str, payload: bytes, reply: str, headers: dict[str, str]
) -> None:
    block = protocol.encode_headers(headers)
    assert block == nats_py_header_block(headers)
    ours = protocol.encode_hpub(subject, payload, block, reply)
    assert ours == canonical(oracle.hpub_cmd(subject, reply, block, payload))


@given(subjects, st.one_of(st.just(""), tokens), st.integers(1, 10**9), st.integers(0, 1000))
def test_sub_and_unsub_are_what_nats_py_sends(
    subject: str, queue: str, sid: int, limit: int
) -> None:
    assert protocol.encode_sub(subject, sid, queue) == canonical(
        oracle.sub_cmd(subject, queue, sid)
    )
    assert protocol.encode_unsub(sid, limit) == canonical(oracle.unsub_cmd(sid, limit))


def test_connect_carries_its_options_as_json() -> None:
    cmd = protocol.encode_connect({"headers": True, "user": "u", "pass": "p"})
    assert cmd.startswith(b"CONNECT ") and cmd.endswith(b"\r\n")
    assert json.loads(cmd[len(b"CONNECT ") :]) == {"headers": True, "user": "u", "pass": "p"}
    assert protocol.PING == b"PING\r\n" and protocol.PONG == b"PONG\r\n"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [({"bad name": "x"}, "bad NATS header name"), ({"A": "x\r\nB: y"}, "line break")],
)
def test_a_header_that_would_break_the_block_is_refused(
    headers: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        protocol.encode_headers(headers)


def test_a_subject_with_blanks_is_refused() -> None:
    with pytest.raises(ValueError, match="bad NATS subject 'a b'"):
        protocol.check_subject("a b")


# --- parsing --------------------------------------------------------------------------------


def big_payload(size: int) -> bytes:
    """Long payloads (past the parser's threshold for collecting reads), with CRLFs inside."""
    return (b"0123456789\r\n" * (size // 12 + 1))[:size]


payloads = st.one_of(st.binary(max_size=200), st.integers(70_000, 300_000).map(big_payload))
statuses = st.sampled_from(
    [b"NATS/1.0\r\n", b"NATS/1.0 503\r\n", b"NATS/1.0 404 No Messages\r\n",
     b"NATS/1.0 100 Idle Heartbeat\r\n"]
)  # fmt: skip


@st.composite
def operations(draw: st.DrawFn) -> tuple[bytes, tuple[Any, ...]]:
    """One server operation's bytes, and what parsing it must give."""
    kind = draw(st.sampled_from(["MSG", "HMSG", "INFO", "PING", "PONG", "+OK", "-ERR"]))
    if kind in ("MSG", "HMSG"):
        subject, sid, payload = draw(subjects), draw(st.integers(1, 10**6)), draw(payloads)
        reply = draw(st.one_of(st.just(""), subjects))
        hdr = b""
        if kind == "HMSG":
            lines = draw(st.dictionaries(header_names, header_values.map(str.strip), max_size=3))
            hdr = (
                draw(statuses)
                + b"".join(f"{k}: {v}\r\n".encode() for k, v in lines.items())
                + b"\r\n"
            )
            sizes = f"{len(hdr)} {len(hdr) + len(payload)}"
        else:
            sizes = str(len(payload))
        line = " ".join(w for w in (kind, subject, str(sid), reply, sizes) if w)
        return line.encode() + b"\r\n" + hdr + payload + b"\r\n", (
            "msg",
            subject,
            sid,
            reply,
            hdr,
            payload,
        )
    if kind == "INFO":
        info = draw(st.dictionaries(tokens, st.one_of(st.integers(), tokens), max_size=4))
        return b"INFO " + json.dumps(info).encode() + b"\r\n", ("info", info)
    if kind == "-ERR":
        text = draw(st.sampled_from(["Stale Connection", 'Permissions Violation for "a.b"']))
        return f"-ERR '{text}'\r\n".encode(), ("err", text)
    return kind.encode() + b"\r\n", (kind,)


def seen(op: protocol.Op[Msg]) -> tuple[Any, ...]:
    if isinstance(op, Msg):
        return ("msg", op.subject, op.sid, op.reply, op.raw_headers, op.data)
    if isinstance(op, Info):
        return ("info", op.options)
    if isinstance(op, Err):
        return ("err", op.text)
    return (repr(op),)


def parse_in_pieces(stream: bytes, cuts: list[int]) -> list[tuple[Any, ...]]:
    parser = Parser(Msg)
    out: list[tuple[Any, ...]] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        out += [seen(op) for op in parser.feed(stream[start:cut])]
        start = cut
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(operations(), min_size=1, max_size=12), st.data())
def test_any_cut_of_the_stream_gives_the_same_operations(
    ops: list[tuple[bytes, tuple[Any, ...]]], data: st.DataObject
) -> None:
    stream = b"".join(raw for raw, _ in ops)
    expected = [want for _, want in ops]
    assert parse_in_pieces(stream, []) == expected
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    assert parse_in_pieces(stream, cuts) == expected


def test_a_stream_fed_byte_by_byte_is_parsed_the_same() -> None:
    stream = (
        b'INFO {"max_payload":1048576}\r\nMSG a.b 1 5\r\nhello\r\n'
        b"HMSG c 2 _INBOX.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n+OK\r\n"
    )
    assert parse_in_pieces(stream, list(range(len(stream)))) == parse_in_pieces(stream, [])


@pytest.mark.parametrize(
    ("raw", "status", "description", "headers"),
    [
        (b"NATS/1.0 503\r\n\r\n", 503, "", {}),
        (b"NATS/1.0 404 No Messages\r\n\r\n", 404, "No Messages", {}),
        (
            b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\n\r\n",
            100, "Idle Heartbeat", {"Nats-Last-Consumer": "5"},
        ),
        (b"NATS/1.0\r\nA: 1\r\nB:  two words \r\n\r\n", None, "", {"A": "1", "B": "two words"}),
        (b"", None, "", {}),
    ],
)  # fmt: skip
def test_status_and_headers_are_read_from_the_header_block(
    raw: bytes, status: int | None, description: str, headers: dict[str, str]
) -> None:
    msg = Msg("s", 1, "", raw, b"")
    assert (msg.status, msg.description, msg.headers) == (status, description, headers)


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        (b"HELLO\r\n", "unknown protocol operation 'HELLO'"),
        (b"MSG a 1 x\r\n", "a size or subscription id is not a number"),
        (b"MSG a 1 2 3 4\r\n", "malformed message line"),
        (b"MSG a x 2\r\nhi\r\n", "a size or subscription id is not a number"),
        (b"MSG a 1 -2\r\nhi\r\n", "bad header or message size"),
        (b"MSG a 1 2\r\nhiX\r\n", "payload not followed by CRLF"),
        (b"HMSG a 1 9 5\r\n", "bad header or message size"),
        (b"INFO {nope\r\n", "INFO is not JSON"),
        (b"INFO [1]\r\n", "INFO is not a JSON object"),
        (b"PING" + b" " * protocol.MAX_CONTROL_LINE, "control line longer than"),
    ],
)
def test_a_broken_stream_is_a_protocol_error_naming_the_problem(
    stream: bytes, problem: str
) -> None:
    with pytest.raises(ProtocolError, match=problem):
        Parser(Msg).feed(stream)
