"""The fast header parser returns exactly what nats-py's own parser returns."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.nats import speedups

NAME = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n:"), max_size=12)
VALUE = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20)
LINE = st.one_of(
    st.tuples(NAME, VALUE).map(lambda nv: f"{nv[0]}:{nv[1]}".encode()),
    st.tuples(NAME, VALUE).map(lambda nv: f"{nv[0]}: {nv[1]}".encode()),
    st.binary(max_size=30).filter(lambda b: b"\r\n" not in b),
)


def test_nats_py_still_has_the_parser_we_replace() -> None:
    assert speedups.original() is not None


@given(st.lists(LINE, max_size=6))
def test_same_result_as_nats_py(lines: list[bytes]) -> None:
    raw = b"\r\n".join(lines) + b"\r\n\r\n"
    assert speedups.parse_header_lines(raw) == speedups.original()(raw)


def test_typical_event_headers() -> None:
    raw = b"Nats-Msg-Id: abc\r\nNats-Expected-Last-Subject-Sequence: 0\r\nBaker-Event-Type: JobDispatched\r\nBad Name: x\r\n\x1cSep: y\r\n\r\n"  # noqa: E501
    assert (
        speedups.parse_header_lines(raw)
        == speedups.original()(raw)
        == {
            "Nats-Msg-Id": "abc",
            "Nats-Expected-Last-Subject-Sequence": "0",
            "Baker-Event-Type": "JobDispatched",
        }
    )


def test_reply_subject_parsing_matches_nats_py_metadata() -> None:
    from nats.aio.msg import Msg  # noqa: PLC0415

    from adapters.nats.pull import delivery, stream_position  # noqa: PLC0415

    for reply in (
        "$JS.ACK.BAKER_JOBS.workers.3.1234.55.1700000000000000000.7",
        "$JS.ACK._.ACCHASH.BAKER_EVENTS.c.1.99.98.1700000000000000000.0.xyz",
    ):
        msg = Msg(_client=None, subject="s", reply=reply)  # type: ignore[arg-type]
        meta = msg.metadata
        assert delivery(msg) == (meta.sequence.stream, meta.num_delivered)
        assert stream_position(msg) == (meta.sequence.stream, meta.num_pending)


TOKEN = st.text(alphabet=st.characters(codec="utf-8", exclude_characters=" \t\r\n"), max_size=16)
HEADER_NAME = st.one_of(
    st.sampled_from(["Nats-Msg-Id", "traceparent", "Nats-Expected-Last-Subject-Sequence"]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8),
)
HEADER_VALUE = st.text(alphabet=st.characters(codec="utf-8"), max_size=24)


async def nats_py_bytes(
    subject: str, reply: str, payload: bytes, headers: dict[str, str] | None
) -> bytes:
    from nats.aio.client import Client  # noqa: PLC0415

    client = Client()
    sent: list[bytes] = []

    async def capture(cmd: bytes, priority: bool = False) -> None:
        sent.append(cmd)

    client._send_command = capture  # type: ignore[method-assign]
    await speedups.original_send_publish()(client, subject, reply, payload, len(payload), headers)
    return sent[0]


@given(
    TOKEN.filter(bool),
    TOKEN,
    st.binary(max_size=40),
    st.one_of(st.none(), st.dictionaries(HEADER_NAME, HEADER_VALUE, max_size=4)),
)
async def test_publish_encodes_what_nats_py_sends(
    subject: str, reply: str, payload: bytes, headers: dict[str, str] | None
) -> None:
    ours = speedups.encode_publish(subject, reply, payload, headers)
    if ours is None:  # left to nats-py: only for header names it would strip, skip or refuse
        assert headers and any(not speedups._HEADER_KEY.fullmatch(k) for k in headers)
        return
    assert ours == await nats_py_bytes(subject, reply, payload, headers)


async def test_typical_append_is_encoded_by_us() -> None:
    headers = {"Nats-Msg-Id": "e-1", "Nats-Expected-Last-Subject-Sequence": " 7 ", "X": "a\r\nb"}
    ours = speedups.encode_publish("baker.events.job.j1", "_INBOX.x.1", b"{}", headers)
    assert ours is not None
    assert ours == await nats_py_bytes("baker.events.job.j1", "_INBOX.x.1", b"{}", headers)
    assert b"Nats-Expected-Last-Subject-Sequence: 7\r\nX: a  b\r\n" in ours


async def test_unusual_arguments_go_to_nats_py(monkeypatch: pytest.MonkeyPatch) -> None:
    from nats.aio.client import Client  # noqa: PLC0415

    calls: list[tuple[Any, ...]] = []

    async def original(self: Client, *args: Any) -> None:
        calls.append(args)

    monkeypatch.setattr(speedups, "_PUBLISH", original)
    client = Client()
    client._status = Client.CONNECTED
    await speedups.publish(client, "subject", b"x", None)  # type: ignore[arg-type]
    await speedups.publish(client, "bad subject", b"x")
    await speedups.publish(client, "s", b"x" * (client._max_payload + 1))
    await speedups.publish(client, "s", b"x", headers={"Bad Key": "v"})
    assert len(calls) == 4
    assert client._pending == []  # nothing queued behind nats-py's back


class _Socket:
    """The asyncio transport under nats-py's `TcpTransport`: how far behind it is."""

    def __init__(self, behind: int = 0) -> None:
        self.behind = behind

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.behind


class _Transport:
    """Stands in for nats-py's `TcpTransport`: records every write."""

    def __init__(self, behind: int = 0) -> None:
        self._io_writer = SimpleNamespace(transport=_Socket(behind))
        self.writes: list[list[bytes]] = []

    def writelines(self, payload: list[bytes]) -> None:
        self.writes.append(list(payload))


def connected_client(behind: int = 0) -> Any:
    import asyncio  # noqa: PLC0415

    from nats.aio.client import Client  # noqa: PLC0415

    client = Client()
    client._status = Client.CONNECTED
    client._flush_queue = asyncio.Queue(maxsize=1024)
    client._transport = _Transport(behind)
    return client


async def test_the_common_case_is_queued_and_written_at_the_next_turn() -> None:
    import asyncio  # noqa: PLC0415

    client = connected_client()
    args = ("baker.jobs.dispatch", b"{}", "_INBOX.a.1", {"Nats-Msg-Id": "j"})
    await speedups.publish(client, *args)
    first = speedups.encode_publish("baker.jobs.dispatch", "_INBOX.a.1", b"{}", args[3])
    assert client._pending == [first]
    assert client._pending_data_size == len(first)
    assert client.stats["out_msgs"] == 1 and client.stats["out_bytes"] == 2
    await speedups.publish(client, "again", b"")
    assert client._transport.writes == []  # nothing written within the turn that published
    await asyncio.sleep(0)  # one turn of the loop
    assert client._transport.writes == [[first, b"PUB again  0\r\n\r\n"]]  # one write, in order
    assert client._pending == [] and client._pending_data_size == 0
    assert client._flush_queue.empty()  # nats-py's flusher task was not needed


async def test_a_socket_that_is_behind_is_left_to_nats_py_flusher() -> None:
    import asyncio  # noqa: PLC0415

    client = connected_client(behind=speedups._WRITE_BUFFER_LIMIT + 1)
    await speedups.publish(client, "s", b"x")
    await asyncio.sleep(0)
    assert client._transport.writes == []  # its flusher writes and waits for the drain
    assert client._flush_queue.qsize() == 1
    assert client._pending_data_size > 0
