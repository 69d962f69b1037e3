"""The hash chain of the stored events (DESIGN §12, tamper-evident history).

Every event stored since the chain exists carries `prevHash` (the `hash` of its aggregate's
previous event, "" for the first one) and `hash`: sha256, hex, of its **canonical bytes**.

Canonical bytes ("baker canonical JSON 1"): the stored event document without its `hash`
member, serialised as JSON with the members of every object sorted by key, no whitespace,
UTF-8 (characters other than the ones JSON must escape written as they are), numbers as orjson
writes them (integers as they are, floats in their shortest round-trip form). Since `prevHash`
is inside what is hashed, each hash covers the whole history of its aggregate before it.
A verifier needs only the document: drop `hash`, serialise as above, compare.

The stored bytes are the canonical bytes with `,"hash":"…"` added before the closing brace,
so the write path serialises once and hashes what it serialised.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields

import orjson

from domain.events.base import Envelope, JsonDict, envelope_head

CANONICAL = "baker canonical JSON 1"
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z


def canonical_bytes(doc: JsonDict) -> bytes:
    """The canonical bytes of an event document (its `hash` member left out)."""
    if "hash" in doc:
        doc = {k: v for k, v in doc.items() if k != "hash"}
    return orjson.dumps(doc, option=_SORTED)


def document_hash(doc: JsonDict) -> str:
    """What the `hash` of this event document must be."""
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


def seal(env: Envelope, prev_hash: str) -> tuple[Envelope, bytes]:
    """`env` as the next event of its aggregate's chain after `prev_hash` ("" if none), and
    its stored bytes (the members `encode_event` writes, with `prevHash`)."""
    doc = envelope_head(env)
    doc["data"] = env.data.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["prevHash"] = prev_hash
    body = orjson.dumps(doc, option=_SORTED)
    digest = hashlib.sha256(body).hexdigest()
    return _chained(env, prev_hash, digest), body[:-1] + b',"hash":"' + digest.encode() + b'"}'


# `env` with its place in the chain, written slot by slot through the slots' own setters:
# the frozen dataclass's `__init__` (an `object.__setattr__` call per field) cost more than
# the hash itself, on every append.
_SLOTS = ("event_id", "aggregate", "aggregate_id", "version", "occurred_at", "data", "trace_id",
          "causation_id", "generation", "prev_hash", "hash")  # fmt: skip
if tuple(f.name for f in fields(Envelope)) != _SLOTS:  # pragma: no cover - a new field
    raise RuntimeError("Envelope's fields changed: update domain.events.chain._SLOTS")
(_event_id, _aggregate, _aggregate_id, _version, _occurred_at, _data, _trace_id,
 _causation_id, _generation, _prev_hash, _hash) = (
    Envelope.__dict__[name].__set__ for name in _SLOTS
)  # fmt: skip


def _chained(env: Envelope, prev_hash: str, digest: str) -> Envelope:
    sealed: Envelope = object.__new__(Envelope)
    _event_id(sealed, env.event_id)
    _aggregate(sealed, env.aggregate)
    _aggregate_id(sealed, env.aggregate_id)
    _version(sealed, env.version)
    _occurred_at(sealed, env.occurred_at)
    _data(sealed, env.data)
    _trace_id(sealed, env.trace_id)
    _causation_id(sealed, env.causation_id)
    _generation(sealed, env.generation)
    _prev_hash(sealed, prev_hash)
    _hash(sealed, digest)
    return sealed
