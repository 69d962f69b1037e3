"""The two chain fields on the stored form: readers accept events with them and without them
(no upcaster: both are optional), and `seal` writes what a verifier recomputes."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.events import (
    Envelope,
    EventDecodeError,
    JobProgressed,
    canonical_bytes,
    decode_event,
    document_hash,
    encode_event,
    seal,
    to_document,
)

WHEN = datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=UTC)


def envelope(progress: str = "step 1") -> Envelope:
    event = JobProgressed(attempt=1, progress=progress)
    return Envelope("e-1", "job", "job-1", 2, WHEN, event, trace_id="t", generation=3)


def test_an_event_stored_before_the_chain_reads_as_before() -> None:
    back = decode_event(encode_event(envelope()))
    assert back.hash is None and back.prev_hash is None
    assert "hash" not in to_document(back) and "prevHash" not in to_document(back)


def test_a_sealed_event_reads_back_with_its_chain_fields() -> None:
    sealed, raw = seal(envelope(), "ab" * 32)
    back = decode_event(raw)
    assert back == sealed
    assert (back.prev_hash, back.hash) == ("ab" * 32, document_hash(orjson.loads(raw)))
    doc = to_document(back)
    assert doc["prevHash"] == "ab" * 32 and doc["hash"] == sealed.hash
    assert decode_event(encode_event(back)) == back  # re-encoding keeps both fields


def test_chain_fields_of_the_wrong_type_are_named() -> None:
    doc = orjson.loads(seal(envelope(), "")[1])
    with pytest.raises(EventDecodeError, match="hash: must be a string"):
        decode_event(orjson.dumps({**doc, "hash": 5}))
    with pytest.raises(EventDecodeError, match="prevHash: must be a string"):
        decode_event(orjson.dumps({**doc, "prevHash": ["x"]}))


@given(st.text(), st.sampled_from(["", "0" * 64]))
def test_the_stored_bytes_are_the_canonical_bytes_and_their_hash(progress: str, prev: str) -> None:
    sealed, raw = seal(envelope(progress), prev)
    doc = orjson.loads(raw)
    body = canonical_bytes(doc)
    assert raw == body[:-1] + b',"hash":"' + str(sealed.hash).encode() + b'"}'
    assert list(orjson.loads(body)) == sorted(orjson.loads(body))  # keys sorted
    assert document_hash(doc) == sealed.hash
    assert (
        document_hash({**doc, "data": {**doc["data"], "progress": progress + "!"}}) != sealed.hash
    )


@given(
    st.text(max_size=20), st.none() | st.text(max_size=8), st.none() | st.text(max_size=8),
    st.none() | st.integers(0, 10**6), st.sampled_from(["", "0" * 64]),
)  # fmt: skip
def test_the_sealed_envelope_is_the_given_one_with_its_chain_fields(
    progress: str, trace: str | None, cause: str | None, generation: int | None, prev: str
) -> None:
    given_env = Envelope(
        "e-9", "job", "job-9", 4, WHEN, JobProgressed(attempt=2, progress=progress),
        trace_id=trace, causation_id=cause, generation=generation,
    )  # fmt: skip
    sealed, _raw = seal(given_env, prev)
    assert sealed == replace(given_env, prev_hash=prev, hash=sealed.hash)
    assert sealed.hash is not None and len(sealed.hash) == 64
    with pytest.raises(FrozenInstanceError):
        sealed.hash = "x"  # type: ignore[misc]


def test_sealing_again_after_a_conflict_rewrites_both_chain_fields() -> None:
    env = envelope()
    seal(env, "a" * 64)  # an append refused: the aggregate had moved on
    sealed, raw = seal(env, "b" * 64)
    doc = orjson.loads(raw)
    assert sealed.prev_hash == doc["prevHash"] == "b" * 64
    assert sealed.hash == doc["hash"] == document_hash(doc)
