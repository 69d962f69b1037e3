"""A faster read path for nats-py: MSG and HMSG lines split instead of matched by regexes.

nats-py's parser tries a regular expression per protocol operation on every control line,
copies each payload twice, then awaits two coroutines (`_process_msg`, `_process_headers`)
per message before it reaches the subscription's queue. Every JetStream delivery and every
PubAck goes through it: about a tenth of the Brain's and a worker's CPU.

`parse` takes the common case off the front of the buffer: a complete MSG or HMSG line whose
payload has arrived, for a plain subscription (no JetStream push consumer state, no old-style
request future, no message limit) with ordinary headers and room in its queue. It builds the
same `Msg`, counts the same stats, and queues it as nats-py does. Everything else (other
operations, status headers such as a pull's 404, a split buffer, a slow consumer, anything
malformed) is left to nats-py's own parser and `_process_msg`, in order.
`tests/unit/test_fastparse.py` checks that both deliver the same messages for the same bytes.

The same path also runs straight from the socket protocol's `data_received` (`_hook`): a read
whose messages it can deliver never wakes nats-py's read-loop task (4 % less CPU per job for
the Brain, the workers and the server together). Whatever it cannot deliver, and every read
that arrives while the read loop still has bytes or is parsing, goes to the read loop as
before, in order; the same test checks this path against nats-py's parser too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import nats.aio.client as nats_client
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.protocol import parser as nats_parser

_PARSE: Any = nats_parser.Parser.__dict__.get("parse")
_PROCESS: Any = Client.__dict__.get("_process_msg")
_AWAITING_CONTROL_LINE = getattr(nats_parser, "AWAITING_CONTROL_LINE", None)
_MAX_LINE = int(getattr(nats_parser, "MAX_CONTROL_LINE_SIZE", 4096))
_HEADER_LINE = b"NATS/1.0\r\n"  # a header block without an inline status
log = logging.getLogger("baker.nats")


def _split(line: bytes) -> tuple[bytes, int, bytes, int, int] | None:
    """(subject, sid, reply, header size, total size) of a MSG/HMSG line, or None."""
    if b"\r" in line or b"\n" in line:
        return None  # nats-py's regexes treat these as whitespace: leave it to them
    words = line.split()
    op, n = words[0], len(words)
    if op == b"MSG" and n in (4, 5):
        reply = words[3] if n == 5 else b""
        sizes = (b"0", words[-1])
    elif op == b"HMSG" and n in (5, 6):
        reply = words[3] if n == 6 else b""
        sizes = (words[-2], words[-1])
    else:
        return None
    sid = words[2]
    if not (sid.isdigit() and sizes[0].isdigit() and sizes[1].isdigit()):
        return None
    return words[1], int(sid), reply, int(sizes[0]), int(sizes[1])


def _queue(nc: Any, sid: int, subject: bytes, reply: bytes, payload: bytes, hdr: bytes) -> bool:
    """Queue the message on its subscription as `_process_msg` would; False where that
    function must decide (its rarer branches)."""
    sub = nc._subs.get(sid)
    if sub is None or sub._jsi is not None or sub._future is not None or sub._max_msgs:
        return False
    size = len(payload)
    limit = sub._pending_bytes_limit
    if limit > 0 and sub._pending_size + size >= limit:
        return False  # the slow-consumer report
    queue = sub._pending_queue
    maxsize = getattr(queue, "maxsize", 0)  # 0 also for `direct._Handoff`, never full
    if maxsize > 0 and queue.qsize() >= maxsize:
        return False
    headers = None
    if hdr:
        if not hdr.startswith(_HEADER_LINE):
            return False  # an inline status (404, 408, 100 heartbeat): nats-py's rules
        if len(hdr) > len(_HEADER_LINE):
            headers = nc._parse_header_lines(hdr[len(_HEADER_LINE) :]) or None
    stats = nc.stats
    stats["in_msgs"] += 1
    stats["in_bytes"] += size
    sub._received += 1
    msg = nc.msg_class(
        subject=subject.decode(),
        reply=reply.decode(),
        data=payload,
        headers=headers,
        _client=nc,
        _sid=sid,
    )
    sub._pending_size += size
    queue.put_nowait(msg)
    return True


# What `_front` finds at the front of the buffer, besides a complete message.
_WAIT = "wait"  # nothing, or the start of a MSG/HMSG still on its way: wait for more
_NATS = "nats"  # an operation for nats-py's parser
_SLOW = "slow"  # a complete message only `_process_msg` may deliver (its rarer branches)

Front = tuple[bytes, int, bytes, bytes, bytes, int]  # subject, sid, reply, hdr, payload, length


def _front(buf: bytearray) -> Front | str:
    """The complete MSG/HMSG at the front of `buf`, or `_WAIT` / `_NATS`."""
    if not buf:
        return _WAIT
    if not (buf[:4] == b"MSG " or buf[:5] == b"HMSG "):
        return _NATS
    end = buf.find(b"\r\n", 0, _MAX_LINE)
    if end < 0:
        return _WAIT if len(buf) < _MAX_LINE else _NATS  # nats-py refuses an endless line
    parsed = _split(bytes(buf[:end]))
    if parsed is None or parsed[3] > parsed[4]:
        return _NATS  # malformed: nats-py's parser says how
    subject, sid, reply, hsize, size = parsed
    start = end + 2
    if len(buf) < start + size + 2:
        # The payload is still on its way. Waiting here, not in nats-py's parser, keeps the
        # messages after it on this path (nats-py would parse the rest of the next read
        # itself); the line is split again then, which is cheap.
        return _WAIT
    hdr = bytes(buf[start : start + hsize]) if hsize else b""
    payload = bytes(buf[start + hsize : start + size])
    return subject, sid, reply, hdr, payload, start + size + 2


def _drain(parser: Any) -> str:
    """Deliver the complete fast-path messages at the front of the parser's buffer, without
    awaiting anything; then say what is left (`_WAIT`, `_NATS` or `_SLOW`, still in the
    buffer)."""
    buf: bytearray = parser.buf
    while not isinstance(front := _front(buf), str):
        subject, sid, reply, hdr, payload, length = front
        if not _queue(parser.nc, sid, subject, reply, payload, hdr):
            return _SLOW
        del buf[:length]
    return front


async def parse(self: Any, data: bytes = b"") -> None:
    """`Parser.parse`, with complete MSG/HMSG operations at the front handled here."""
    self.buf.extend(data)
    self._baker_busy = True  # the socket hook must not take data from under us meanwhile
    try:
        _hook(self)
        left = _NATS
        while self.state == _AWAITING_CONTROL_LINE:
            left = _drain(self)
            if left != _SLOW:
                break
            front = _front(self.buf)
            assert not isinstance(front, str)  # `_drain` left it there, complete
            subject, sid, reply, hdr, payload, length = front
            del self.buf[:length]
            await self.nc._process_msg(sid, subject, reply, payload, hdr or None)
        if self.buf and left != _WAIT:
            await _PARSE(self)
    finally:
        self._baker_busy = False


def _hook(parser: Any) -> None:
    """Parse straight from the socket protocol's `data_received` (no wake-up of nats-py's
    read-loop task per read) while nothing is queued for that loop; otherwise, and for what
    needs nats-py, the bytes go to the read loop as before, in order. Installed on the
    connection's current stream protocol (a reconnect makes a new one)."""
    transport = getattr(parser.nc, "_transport", None)
    reader = getattr(transport, "_io_reader", None)
    writer = getattr(transport, "_io_writer", None)
    sock = getattr(writer, "transport", None)
    protocol = sock.get_protocol() if sock is not None else None
    if protocol is None or getattr(parser, "_baker_hooked", None) is protocol:
        return
    parser._baker_hooked = protocol
    if not isinstance(protocol, asyncio.StreamReaderProtocol) or not isinstance(
        getattr(reader, "_buffer", None), bytearray
    ):
        return
    if getattr(protocol, "_stream_reader", None) is not reader:
        return  # not the plain TCP stream we know (TLS, say)
    protocol.data_received = _socket_hook(parser, reader, protocol.data_received)  # type: ignore[method-assign]


def _socket_hook(parser: Any, reader: Any, original: Any) -> Any:
    def data_received(data: bytes) -> None:
        if parser._baker_busy or reader._buffer or parser.state != _AWAITING_CONTROL_LINE:
            original(data)
            return
        parser.buf.extend(data)
        try:
            if _drain(parser) == _WAIT:
                return
        except Exception:  # never into the transport: it would close the connection
            log.exception("fast parse from the socket failed; nats-py parses the rest")
        rest = bytes(parser.buf)
        del parser.buf[:]
        original(rest)  # nats-py's read loop parses the rest, in order

    return data_received


@functools.cache
def replicable() -> bool:
    """Whether nats-py has the parts this module stands in for, in the shape it knows."""
    probe_client = Client()
    probe = Subscription(probe_client)
    return (
        callable(_PARSE)
        and callable(_PROCESS)
        and isinstance(_AWAITING_CONTROL_LINE, int)
        and getattr(nats_client, "parse_email", None) is None  # the other header parser
        and all(
            hasattr(probe, name)
            for name in (
                "_jsi",
                "_future",
                "_max_msgs",
                "_received",
                "_pending_size",
                "_pending_bytes_limit",
                "_pending_queue",
            )
        )
        and isinstance(probe._pending_queue, asyncio.Queue)
        and all(hasattr(probe_client, name) for name in ("_subs", "stats", "msg_class"))
    )


def install() -> bool:
    """Use `parse` for every nats-py connection; True when installed."""
    if not replicable():
        return False
    nats_parser.Parser.parse = parse  # type: ignore[method-assign]
    return True


def original_parse() -> Any:
    """nats-py's own parser (for the equivalence test)."""
    return _PARSE
