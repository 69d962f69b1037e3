"""Wire messages: lenient parsing, strict values, errors that name the field."""

from __future__ import annotations

import json

import pytest

from domain.wire import (
    DispatchMessage,
    StatusMessage,
    WireError,
    decode_dispatch,
    decode_result,
    decode_status,
    peek_id,
)


def test_the_seed_examples_parse() -> None:
    dispatch = decode_dispatch(json.dumps({
        "id": "job-abc-123", "type": "agent",
        "payload": {"prompt": "Research ...", "model": "claude-sonnet-4-20250514"},
        "replyTo": "baker.jobs.status.job-abc-123",
    }))  # fmt: skip
    assert dispatch.id == "job-abc-123" and dispatch.reply_to == "baker.jobs.status.job-abc-123"
    status = decode_status(b'{"id": "job-abc-123", "status": "running", "progress": "Analyzing"}')
    assert (status.status, status.progress, status.attempt) == ("running", "Analyzing", None)


def test_camel_snake_and_the_upstream_job_id_are_all_accepted() -> None:
    a = decode_status(b'{"jobId": "job-1", "status": "received", "workerId": "w-1"}')
    b = decode_status(b'{"id": "job-1", "status": "received", "worker_id": "w-1"}')
    assert (a.id, a.worker_id) == (b.id, b.worker_id) == ("job-1", "w-1")


def test_unknown_fields_are_kept_and_do_not_break_parsing() -> None:
    msg = decode_result(
        b'{"id": "job-1", "status": "completed", "result": 1, "shinyNew": {"x": 1}}'
    )
    assert msg.model_extra == {"shinyNew": {"x": 1}}


def test_a_field_given_under_two_names_is_one_field_or_refused() -> None:
    """Found by fuzzing: `durationMs` read, `duration_ms` kept as an unknown field and sent on
    as if it were the field, so the message we passed on no longer decoded."""
    same = decode_result(b'{"id": "job-1", "jobId": "job-1", "status": "completed",'
                         b' "durationMs": 5, "duration_ms": 5}')  # fmt: skip
    assert same.duration_ms == 5 and same.model_extra == {}
    assert decode_result(same.encode()) == same
    with pytest.raises(WireError) as refused:
        decode_result(b'{"id": "job-1", "status": "completed", "durationMs": null,'
                      b' "duration_ms": ["x"]}')  # fmt: skip
    assert refused.value.field == "durationMs"
    assert "given twice with different values" in str(refused.value)


def test_the_upstream_terminal_status_may_carry_the_result() -> None:
    msg = decode_status(
        b'{"jobId": "job-1", "status": "completed", "result": "ok", "durationMs": 5}'
    )
    assert (msg.result, msg.duration_ms) == ("ok", 5)


@pytest.mark.parametrize(
    ("raw", "field", "hint"),
    [
        (b"not json", "body", "not valid JSON"),
        (b"[]", "body", "JSON object"),
        (b'{"status": "running"}', "id", "required"),
        (b'{"id": "job-1", "status": "exploded"}', "status", "received"),
        (b'{"id": "job-1", "status": "running", "attempt": 0}', "attempt", "greater than"),
        (b'{"id": "job-1", "status": "running", "attempt": "x"}', "attempt", "integer"),
        (b'{"id": "job.1", "status": "running"}', "id", "not a valid id"),
        (b'{"id": "job-1", "status": "running", "timestamp": "noon"}', "timestamp", ""),
    ],
)
def test_bad_status_messages_name_the_field(raw: bytes, field: str, hint: str) -> None:
    with pytest.raises(WireError) as err:
        decode_status(raw)
    assert err.value.field == field
    assert hint in str(err.value)


def test_bad_dispatch_and_result_name_the_field() -> None:
    with pytest.raises(WireError, match=r"^type:"):
        decode_dispatch(b'{"id": "job-1", "type": "shell", "payload": {}}')
    with pytest.raises(WireError, match=r"^status:"):
        decode_result(b'{"id": "job-1", "status": "running"}')
    with pytest.raises(WireError, match=r"^durationMs|^duration_ms"):
        decode_result(b'{"id": "job-1", "status": "failed", "durationMs": -1}')


def test_encode_is_camel_case_without_unset_fields_and_round_trips() -> None:
    msg = StatusMessage(id="job-1", status="running", worker_id="w", attempt=2)
    assert json.loads(msg.encode()) == {
        "id": "job-1",
        "status": "running",
        "workerId": "w",
        "attempt": 2,
    }
    assert decode_status(msg.encode()) == msg
    d = DispatchMessage(
        id="job-2", type="command", payload={"command": "uptime"}, timeout_seconds=5
    )
    assert decode_dispatch(d.encode()) == d


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b'{"id": "job-9", "status": 1}', "job-9"), (b'{"jobId": "job-8"}', "job-8"),
     (b"garbage", None), (b'{"id": "a.b"}', None), (b"[1]", None)],
)  # fmt: skip
def test_peek_id_finds_the_job_of_a_broken_message(raw: bytes, expected: str | None) -> None:
    assert peek_id(raw) == expected
