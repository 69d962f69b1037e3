"""Live output messages (DESIGN §10): pure encode/decode, strict values, unknown fields
tolerated, errors naming the field."""

from __future__ import annotations

import pytest

from domain.ids import InvalidId
from domain.wire import WireError
from domain.wire_output import OutputMessage, decode_output, encode_output, output_subject


def test_a_message_goes_there_and_back() -> None:
    raw = encode_output("job-1", 2, 7, "stderr", "line\nnext ✓")
    msg = decode_output(raw)
    assert (msg.id, msg.attempt, msg.seq, msg.stream, msg.data) == (
        "job-1", 2, 7, "stderr", "line\nnext ✓",
    )  # fmt: skip
    assert b"\n" not in raw  # one line: it goes into an SSE `data:` field as it is


def test_the_hand_written_encoder_matches_the_model() -> None:
    model = OutputMessage(id="job-1", attempt=1, seq=3, stream="text", data='say "hi"')
    assert encode_output("job-1", 1, 3, "text", 'say "hi"') == model.encode()


def test_unknown_fields_are_tolerated() -> None:
    msg = decode_output(
        b'{"id": "job-1", "attempt": 1, "seq": 1, "stream": "text", "data": "x", "new": 1}'
    )
    assert msg.data == "x" and msg.model_extra == {"new": 1}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"nope", "body"),
        (b'{"attempt": 1, "seq": 1, "stream": "text", "data": ""}', "id"),
        (b'{"id": "job-1", "attempt": 0, "seq": 1, "stream": "text", "data": ""}', "attempt"),
        (b'{"id": "job-1", "attempt": 1, "seq": 0, "stream": "text", "data": ""}', "seq"),
        (b'{"id": "job-1", "attempt": 1, "seq": 1, "stream": "log", "data": ""}', "stream"),
        (b'{"id": "job-1", "attempt": 1, "seq": 1, "stream": "text", "data": 5}', "data"),
        (b'{"id": "job-1", "attempt": 1, "seq": 1, "stream": "text"}', "data"),
        (b'{"id": "job.1", "attempt": 1, "seq": 1, "stream": "text", "data": ""}', "id"),
    ],
)
def test_a_bad_value_names_its_field(raw: bytes, field: str) -> None:
    with pytest.raises(WireError) as caught:
        decode_output(raw)
    assert caught.value.field == field


def test_the_subject_holds_one_checked_id() -> None:
    assert output_subject("job-1") == "baker.jobs.output.job-1"
    with pytest.raises(InvalidId):
        output_subject("job.>")
