"""Inputs for fuzzing: JSON documents built from the field names our decoders and API bodies
know (so most inputs get past the JSON parser into the validation), values of every JSON type
and some of the wrong type, and raw bytes that are not JSON at all."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Text without lone surrogates (JSON cannot carry them; one is among the samples below).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # past 64 bits too
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from(["", " ", "\ud800", "job-0123456789abcdef", "a.b", "*", ">", "\u0000", "é",
                     "-1", "2026-12-05T10:00:00Z", "not a date", "command", "http", "agent",
                     "completed", "failed", "running", "model", "toolCall", "high"]),
)  # fmt: skip


def json_values(keys: list[str], depth: int = 2) -> st.SearchStrategy[Any]:
    """Any JSON value, its objects keyed mostly by `keys`."""
    key = st.one_of(st.sampled_from(keys), TEXT) if keys else TEXT
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=6),
        max_leaves=12,
    )


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, chosen with these weights (`st.one_of` draws its distinct
    branches about evenly and counts a repeated branch once)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


def documents(keys: list[str], base: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """A JSON object with some of `keys` (mostly `base` with a field or two changed or dropped,
    when given), or any other JSON value."""
    values = json_values(keys)
    key = st.sampled_from(keys) if keys else TEXT
    obj = st.dictionaries(key, values, max_size=max(len(keys), 2))
    if base is None:
        return _weighted((3, obj), (1, values))
    changed = st.dictionaries(key, values, max_size=2)
    dropped = st.sets(st.sampled_from(sorted(base)), max_size=1)
    near = st.builds(
        lambda c, d: {k: v for k, v in {**base, **c}.items() if k not in d}, changed, dropped
    )
    return _weighted((6, near), (2, obj), (1, values))


def encoded(docs: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bytes as a sender would put them: JSON of `docs`, sometimes with a NaN (which JSON does
    not allow) or cut short, or any bytes at all."""
    text = docs.map(lambda d: json.dumps(d).encode())
    nan = docs.map(lambda d: json.dumps([d, float("nan")]).encode())
    cut = st.tuples(text, st.integers(0, 200)).map(lambda t: t[0][: t[1]])
    return _weighted((12, text), (1, nan), (1, cut), (1, st.binary(max_size=64)))
