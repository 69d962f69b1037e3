"""The worker's status and result encoders write what the models would, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from domain.wire import (
    ResultMessage,
    StatusMessage,
    decode_result,
    decode_status,
    encode_result,
    encode_status,
)

ids = st.from_regex(r"job-[A-Za-z0-9_]{1,32}", fullmatch=True)
texts = st.none() | st.text(max_size=60)
attempts = st.none() | st.integers(1, 1000)
stamps = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    job_id=ids,
    status=st.sampled_from(["received", "running", "completed", "failed", "cancelled"]),
    worker_id=texts,
    attempt=attempts,
    timestamp=stamps,
    progress=texts,
    error=texts,
    trace_id=texts,
)
def test_status_bytes_are_the_models(**fields: Any) -> None:
    model = StatusMessage(id=fields.pop("job_id"), **fields)
    encoded = encode_status(model.id, **fields)
    assert encoded == model.encode()
    assert decode_status(encoded) == model


@given(
    job_id=ids,
    status=st.sampled_from(["completed", "failed", "cancelled"]),
    result=json_values,
    error=texts,
    duration_ms=st.none() | st.integers(0, 10**9),
    worker_id=texts,
    attempt=attempts,
    trace_id=texts,
)
def test_result_bytes_are_the_models(**fields: Any) -> None:
    model = ResultMessage(id=fields.pop("job_id"), **fields)
    encoded = encode_result(model.id, **fields)
    assert encoded == model.encode()
    assert decode_result(encoded) == model


def test_a_result_orjson_cannot_write_goes_through_the_model() -> None:
    result = {
        1: "int key",
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
    }
    encoded = encode_result("job-1", "completed", result=result)
    assert encoded == ResultMessage(id="job-1", status="completed", result=result).encode()
    assert decode_result(encoded).result == {"1": "int key", "when": "2026-01-02T03:04:05+02:00"}
