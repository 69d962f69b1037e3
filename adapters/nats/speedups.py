"""Faster drop-ins for nats-py's header parser and its publish.

nats-py checks every header name for whitespace with a Python generator over its characters;
an event message carries three headers, and at tens of thousands of messages a second that
check alone was a quarter of the projector's CPU. The replacement does the same check in one
regular-expression scan of the bytes.

Its publish validates and encodes each header with a regular expression and four buffer
appends, then goes through two more coroutines to queue the bytes: about a tenth of the
Brain's and a worker's CPU (ten publishes per job, acks included). `publish` builds the same
bytes in one string and queues them directly; anything out of the ordinary (not connected,
too large, a header nats-py would refuse or rewrite) goes to nats-py's own publish. What is
queued is written at the loop's next turn by one plain callback per turn, instead of waking
nats-py's flusher task through a queue and a future each time (5 % less CPU per job for the
Brain, the workers and the server together); while the socket is behind, nats-py's flusher
writes it and waits for the drain, as before.

`tests/unit/test_speedups.py` checks both return exactly what the originals return, and
`install` leaves nats-py alone if the parts replaced have changed shape.
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Any

from nats.aio.client import Client

from adapters.nats import fastparse

_PUBLISH: Any = Client.__dict__.get("publish")
_SEND_PUBLISH: Any = Client.__dict__.get("_send_publish")
_BAD_SUBJECT = re.compile(r"[ \t\r\n]")  # what nats-py refuses in a published subject
_HEADER_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_good_keys: set[str] = set()

_CRLF = b"\r\n"
# `str.isspace` on ASCII: space, \t \n \v \f \r and the separators \x1c-\x1f.
_SPACE = re.compile(rb"[\s\x1c-\x1f]")
_ORIGINAL: Any = Client.__dict__.get("_parse_header_lines")


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """`Name: Value` lines to a dict, as nats-py's `_parse_header_lines` does."""
    out: dict[str, str] = {}
    for line in raw.split(_CRLF):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip()
        if not name.isascii() or _SPACE.search(name):
            continue
        out[name.decode("ascii")] = value.strip().decode("utf-8", "replace")
    return out


def encode_publish(
    subject: str, reply: str, payload: bytes, headers: dict[str, str] | None
) -> bytes | None:
    """The PUB/HPUB command nats-py would send, or None where we leave it to nats-py."""
    if headers is None:
        return f"PUB {subject} {reply} {len(payload)}\r\n".encode() + payload + _CRLF
    lines = ["NATS/1.0\r\n"]
    for key, raw in headers.items():
        if key not in _good_keys:
            if not isinstance(key, str) or not _HEADER_KEY.fullmatch(key):
                return None  # nats-py strips, skips or refuses it
            _good_keys.add(key)
        if not isinstance(raw, str):
            return None
        value = raw.strip()
        if "\r" in value or "\n" in value:
            value = value.translate(_NEWLINES)
        lines.append(f"{key}: {value}\r\n")
    lines.append("\r\n")
    hdr = "".join(lines).encode()
    size = len(hdr) + len(payload)
    return f"HPUB {subject} {reply} {len(hdr)} {size}\r\n".encode() + hdr + payload + _CRLF


async def publish(
    self: Client,
    subject: str,
    payload: bytes = b"",
    reply: str = "",
    headers: dict[str, str] | None = None,
) -> None:
    """`Client.publish`, with the common case queued without nats-py's per-call overhead."""
    cmd = None
    if (
        self._status == Client.CONNECTED
        and subject
        and isinstance(subject, str)
        and isinstance(reply, str)
        and len(payload) <= self._max_payload
        and (self._skip_subject_validation or not _BAD_SUBJECT.search(subject + reply))
    ):
        cmd = encode_publish(subject, reply, payload, headers)
    if cmd is None:
        await _PUBLISH(self, subject, payload, reply, headers)
        return
    self.stats["out_msgs"] += 1
    self.stats["out_bytes"] += len(payload)
    self._pending.append(cmd)
    self._pending_data_size += len(cmd)
    if self._max_pending_size > 0 and self._pending_data_size > self._max_pending_size:
        await self._flush_pending(force_flush=True)
    elif not getattr(self, "_baker_flush_due", False):
        self._baker_flush_due = True  # type: ignore[attr-defined]
        asyncio.get_running_loop().call_soon(_flush_soon, self)


_WRITE_BUFFER_LIMIT = 1 << 20  # beyond this the socket is behind: let nats-py drain it


def _flush_soon(nc: Client) -> None:
    """Write what is pending at the loop's next turn, as nats-py's flusher task would, but as
    a plain callback (no task wake-up, queue or future per flush). Where the socket is behind
    or the connection is not plainly up, nats-py's flusher does it (and waits for the drain)."""
    nc._baker_flush_due = False  # type: ignore[attr-defined,unused-ignore]
    if not nc._pending_data_size:
        return
    writer = getattr(nc._transport, "_io_writer", None)
    transport = getattr(writer, "transport", None)
    if (
        nc._status != Client.CONNECTED
        or transport is None
        or transport.is_closing()
        or transport.get_write_buffer_size() > _WRITE_BUFFER_LIMIT
    ):
        queue = nc._flush_queue
        if queue is not None and queue.empty():
            queue.put_nowait(asyncio.get_running_loop().create_future())
        return
    nc._transport.writelines(nc._pending)  # type: ignore[union-attr]
    nc._pending = []
    nc._pending_data_size = 0


def install() -> bool:
    """Use the fast parts where nats-py's are the ones we replicate; True when installed."""
    if not isinstance(_ORIGINAL, staticmethod):
        return False
    Client._parse_header_lines = staticmethod(parse_header_lines)  # type: ignore[method-assign]
    if _publish_replicable():
        Client.publish = publish  # type: ignore[method-assign]
    fastparse.install()
    return True


@functools.cache
def _publish_replicable() -> bool:
    """Checked once per process (`install` runs at every connect)."""
    needed = ("_pending", "_pending_data_size", "_max_pending_size", "_flush_queue", "stats")
    probe = Client()
    return (
        callable(_PUBLISH)
        and callable(_SEND_PUBLISH)
        and callable(getattr(Client, "_flush_pending", None))
        and all(hasattr(probe, name) for name in needed)
        and isinstance(getattr(Client, "CONNECTED", None), int)
    )


def original() -> Any:
    """nats-py's own parser (for the equivalence test)."""
    return _ORIGINAL.__func__ if isinstance(_ORIGINAL, staticmethod) else None


def original_send_publish() -> Any:
    """nats-py's own encoder and queuer of a publish (for the equivalence test)."""
    return _SEND_PUBLISH
