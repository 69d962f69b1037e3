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
    """`env` sealed as the next event of its aggregate's chain after `prev_hash` ("" if none),
    and its stored bytes (the members `encode_event` writes, with `prevHash`).

    `env` is the envelope being appended: its two chain slots are written in place, through
    the slots' own setters, rather than copied into a new envelope (the copy cost more than
    the hash itself, on every append). Sealing it again (a retried append after a conflict)
    overwrites both."""
    doc = envelope_head(env)
    doc["data"] = env.data.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["prevHash"] = prev_hash
    body = orjson.dumps(doc, option=_SORTED)
    digest = hashlib.sha256(body).hexdigest()
    _set_prev_hash(env, prev_hash)
    _set_hash(env, digest)
    return env, b"".join((body[:-1], b',"hash":"', digest.encode(), b'"}'))


_set_prev_hash = Envelope.__dict__["prev_hash"].__set__
_set_hash = Envelope.__dict__["hash"].__set__
