"""The NATS client protocol as pure functions and a streaming parser: no I/O, no asyncio.

Encoders return the bytes of one client operation (`CONNECT`, `PUB`, `HPUB`, `SUB`, `UNSUB`,
`PING`, `PONG`). `Parser.feed` takes the bytes of one read, wherever the reads were cut, and
returns the server operations completed so far, in order: messages (`MSG`/`HMSG`), `Info`,
`PING`, `PONG`, `OK` and `Err`. A stream that breaks the protocol raises `ProtocolError`
naming what was wrong; the connection is then unusable, as the server would also judge.

Headers stay raw bytes on the message until first asked for: the JetStream hot paths (a
PubAck, a pulled job) only ever look at the payload and, for status replies, the status line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeAlias, TypeVar

CRLF: Final = b"\r\n"
PING: Final = b"PING\r\n"
PONG: Final = b"PONG\r\n"
HEADER_LINE: Final = b"NATS/1.0"
MAX_CONTROL_LINE = 64 * 1024  # INFO can list a big cluster's URLs; a MSG line is far shorter
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 7230 token: a header name
_BAD_SUBJECT = re.compile(r"[\s]")
_good_names: set[str] = set()  # header names seen valid (a handful, checked once each)


class ProtocolError(Exception):
    """The bytes do not follow the NATS protocol; the message says where."""


# --- encoding -----------------------------------------------------------------------------


def encode_connect(options: Mapping[str, Any]) -> bytes:
    """`CONNECT {json}`: `options` as the server documents them (verbose, headers, user...)."""
    return b"CONNECT " + json.dumps(dict(options), separators=(",", ":")).encode() + CRLF


def encode_pub(subject: str, payload: bytes, reply: str = "") -> bytes:
    if reply:
        return f"PUB {subject} {reply} {len(payload)}\r\n".encode() + payload + CRLF
    return f"PUB {subject} {len(payload)}\r\n".encode() + payload + CRLF


def encode_hpub(subject: str, payload: bytes, headers: bytes, reply: str = "") -> bytes:
    """`HPUB` with a header block from `encode_headers`."""
    size = len(headers) + len(payload)
    if reply:
        line = f"HPUB {subject} {reply} {len(headers)} {size}\r\n"
    else:
        line = f"HPUB {subject} {len(headers)} {size}\r\n"
    return line.encode() + headers + payload + CRLF


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """A `NATS/1.0` header block. Names must be tokens; a value is stripped, and a CR or LF
    in it (which would end the header early) is refused, as is a bad name: `ValueError`."""
    parts = ["NATS/1.0\r\n"]
    for name, raw in headers.items():
        if name not in _good_names:
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                raise ValueError(f"bad NATS header name {name!r}")
            _good_names.add(name)
        value = raw.strip()
        if "\r" in value or "\n" in value:
            raise ValueError(f"NATS header {name} has a line break in its value {value!r}")
        parts.append(f"{name}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode()


def encode_sub(subject: str, sid: int, queue: str = "") -> bytes:
    if queue:
        return f"SUB {subject} {queue} {sid}\r\n".encode()
    return f"SUB {subject} {sid}\r\n".encode()


def encode_unsub(sid: int, max_msgs: int = 0) -> bytes:
    if max_msgs:
        return f"UNSUB {sid} {max_msgs}\r\n".encode()
    return f"UNSUB {sid}\r\n".encode()


def check_subject(subject: str, what: str = "subject") -> str:
    """`subject` if it can go on a control line, else `ValueError` naming it."""
    if not subject or _BAD_SUBJECT.search(subject):
        raise ValueError(f"bad NATS {what} {subject!r}: empty or with whitespace")
    return subject


# --- what the server sends ----------------------------------------------------------------


class Msg:
    """A delivered message. `headers`, `status` and `description` are parsed from the raw
    header block on first use; a status message (503 no responders, a pull's 404/408/409,
    a 100 heartbeat) has its code in `status`."""

    __slots__ = ("_headers", "_status", "data", "raw_headers", "reply", "sid", "subject")

    def __init__(self, subject: str, sid: int, reply: str, raw_headers: bytes, data: bytes) -> None:
        self.subject = subject
        self.sid = sid
        self.reply = reply
        self.raw_headers = raw_headers
        self.data = data
        self._headers: dict[str, str] | None = None
        self._status: tuple[int | None, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Header name -> value (the last one where a name repeats); empty without headers."""
        if self._headers is None:
            self._headers = parse_headers(self.raw_headers)
        return self._headers

    @property
    def status(self) -> int | None:
        if self._status is None:
            self._status = parse_status(self.raw_headers)
        return self._status[0]

    @property
    def description(self) -> str:
        if self._status is None:
            self._status = parse_status(self.raw_headers)
        return self._status[1]

    def __repr__(self) -> str:
        return f"<Msg {self.subject} sid={self.sid} reply={self.reply!r} {len(self.data)}B>"


@dataclass(frozen=True, slots=True)
class Info:
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Err:
    text: str


class _Signal:
    """PING, PONG and +OK: no arguments, so one object each."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PING_OP: Final = _Signal("PING")
PONG_OP: Final = _Signal("PONG")
OK_OP: Final = _Signal("+OK")

M = TypeVar("M", bound=Msg)
MsgFactory: TypeAlias = Callable[[str, int, str, bytes, bytes], M]
Op: TypeAlias = M | Info | Err | _Signal


def parse_status(raw: bytes) -> tuple[int | None, str]:
    """(status code, description) from a header block's first line (`NATS/1.0 404 No
    Messages`), or (None, "") for a plain `NATS/1.0`."""
    end = raw.find(CRLF)
    first = raw[:end] if end >= 0 else raw
    if len(first) <= len(HEADER_LINE):
        return None, ""
    code, _, text = first[len(HEADER_LINE) :].strip().partition(b" ")
    if not code.isdigit():
        return None, ""
    return int(code), text.strip().decode("utf-8", "replace")


def parse_headers(raw: bytes) -> dict[str, str]:
    """`Name: Value` lines after the `NATS/1.0` line; a line without a colon is skipped."""
    out: dict[str, str] = {}
    if not raw:
        return out
    for line in raw.split(CRLF)[1:]:
        name, sep, value = line.partition(b":")
        if sep and (key := name.strip()):
            out[key.decode("utf-8", "replace")] = value.strip().decode("utf-8", "replace")
    return out


class Parser(Generic[M]):
    """Server operations out of a byte stream cut anywhere. `make` builds each message (the
    client passes one that binds the message to its connection)."""

    def __init__(self, make: MsgFactory[M]) -> None:
        self._make = make
        self._buf = b""
        self._chunks: list[bytes] = []  # a long payload's reads, joined once it is complete
        self._have = 0
        self._need = 0  # bytes `_buf` + `_chunks` must hold before parsing is worth trying

    def feed(self, data: bytes) -> list[Op[M]]:
        if self._need:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._need = 0
        elif self._buf:
            data = self._buf + data
        ops: list[Op[M]] = []
        pos = self._parse(data, ops)
        self._buf = data[pos:] if pos < len(data) and not self._need else b""
        return ops

    def _parse(self, data: bytes, ops: list[Op[M]]) -> int:
        """Parse complete operations into `ops`; return where the incomplete rest starts."""
        pos, size = 0, len(data)
        while pos < size:
            end = data.find(CRLF, pos, pos + MAX_CONTROL_LINE)
            if end < 0:
                if size - pos >= MAX_CONTROL_LINE:
                    raise ProtocolError(f"control line longer than {MAX_CONTROL_LINE} bytes")
                self._wait_for(data, pos, 0)
                return pos
            if data[pos] == 0x4D or data[pos] == 0x48:  # MSG, HMSG: the common case first
                done = self._message(data, pos, end, ops)
                if done < 0:
                    return pos
                pos = done
                continue
            ops.append(_control(data[pos:end]))
            pos = end + 2
        return pos

    def _message(self, data: bytes, pos: int, end: int, ops: list[Op[M]]) -> int:
        """Parse the MSG/HMSG whose line ends at `end`; -1 while its payload is incomplete."""
        args = data[pos:end].split()
        op, n = args[0], len(args)
        try:  # int() of the words directly: the hottest lines of the read path
            if op == b"MSG" and n in {4, 5}:
                hsize, total, has_reply = 0, int(args[-1]), n == 5
            elif op == b"HMSG" and n in {5, 6}:
                hsize, total, has_reply = int(args[-2]), int(args[-1]), n == 6
            elif op in {b"MSG", b"HMSG"}:
                raise ProtocolError(f"malformed message line {_show(args)}")
            else:
                ops.append(_control(data[pos:end]))
                return end + 2
            sid = int(args[2])
        except ValueError:
            raise ProtocolError(
                f"a size or subscription id is not a number in {_show(args)}"
            ) from None
        if not 0 <= hsize <= total:
            raise ProtocolError(f"bad header or message size in {_show(args)}")
        start = end + 2
        stop = start + total
        if stop + 2 > len(data):
            self._wait_for(data, pos, stop + 2 - pos)
            return -1
        if data[stop : stop + 2] != CRLF:
            raise ProtocolError(f"payload not followed by CRLF after {_show(args)}")
        reply = args[3].decode("utf-8", "replace") if has_reply else ""
        hdr = data[start : start + hsize] if hsize else b""
        subject = args[1].decode("utf-8", "replace")
        ops.append(self._make(subject, sid, reply, hdr, data[start + hsize : stop]))
        return stop + 2

    def _wait_for(self, data: bytes, pos: int, length: int) -> None:
        """Keep `data[pos:]`; with a known `length`, collect reads until it has arrived
        instead of joining the buffer again on every read (a 1 MiB payload comes in many)."""
        if length > len(data) - pos + 65536:
            self._chunks.append(data[pos:])
            self._have = len(data) - pos
            self._need = length


def _show(args: list[bytes]) -> str:
    return repr(b" ".join(args)[:200].decode("utf-8", "replace"))


def _control(line: bytes) -> Info | Err | _Signal:
    """Any operation but a message, from its line (without CRLF)."""
    op, _, rest = line.strip().partition(b" ")
    word = op.upper()
    if word == b"PING" and not rest.strip():
        return PING_OP
    if word == b"PONG" and not rest.strip():
        return PONG_OP
    if word == b"+OK" and not rest.strip():
        return OK_OP
    if word == b"-ERR":
        return Err(rest.strip().strip(b"'").decode("utf-8", "replace"))
    if word == b"INFO":
        try:
            options = json.loads(rest)
        except ValueError as exc:
            raise ProtocolError(f"INFO is not JSON: {exc}") from None
        if not isinstance(options, dict):
            raise ProtocolError("INFO is not a JSON object")
        return Info(options)
    shown = line[:200].decode("utf-8", "replace")
    raise ProtocolError(f"unknown protocol operation {shown!r}")
