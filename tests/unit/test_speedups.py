"""The fast header parser returns exactly what nats-py's own parser returns."""

from __future__ import annotations

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
