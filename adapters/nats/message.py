"""A delivered message bound to its connection: replies and JetStream acknowledgements.

Acknowledging is publishing a word to the message's reply subject, so it is synchronous like
every publish of our client: it is on the wire at the loop's next turn. Where a JetStream
delivery comes from (stream sequence, delivery count, messages pending) is read from that
reply subject, `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.
<pending>` (or the longer form with a domain and an account hash), with no server call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from adapters.nats import protocol
from adapters.nats.errors import NatsError

ACK: bytes = b"+ACK"
NAK: bytes = b"-NAK"
IN_PROGRESS: bytes = b"+WPI"
TERM: bytes = b"+TERM"


class Publisher(Protocol):
    def publish(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> None: ...


class NotJetStream(NatsError):
    """The message has no `$JS.ACK` reply subject: it was not delivered by a consumer."""


@dataclass(frozen=True, slots=True)
class Delivery:
    stream: str
    consumer: str
    delivered: int  # 1 on the first delivery, 2 on the first redelivery...
    stream_seq: int
    consumer_seq: int
    timestamp_ns: int
    pending: int  # messages left for the consumer after this one


class Msg(protocol.Msg):
    __slots__ = ("_conn",)

    def __init__(
        self, conn: Publisher, subject: str, sid: int, reply: str, raw: bytes, data: bytes
    ) -> None:
        # Not through super(): this runs for every message, and one frame less is measurable.
        self.subject = subject
        self.sid = sid
        self.reply = reply
        self.raw_headers = raw
        self.data = data
        self._headers = None
        self._status = None
        self._conn = conn

    @property
    def is_status(self) -> bool:
        """A status from the server (no responders, a pull's end, a heartbeat), not data."""
        return self.raw_headers[8:9] == b" "

    def respond(self, payload: bytes, headers: dict[str, str] | None = None) -> None:
        if not self.reply:
            raise NatsError(f"message on {self.subject} has no reply subject to respond to")
        self._conn.publish(self.reply, payload, headers=headers)

    def ack(self) -> None:
        self._acknowledge(ACK)

    def nak(self, delay: float | None = None) -> None:
        """Redeliver, after `delay` seconds if given."""
        if delay:
            self._acknowledge(NAK + b" " + orjson.dumps({"delay": int(delay * 1e9)}))
        else:
            self._acknowledge(NAK)

    def in_progress(self) -> None:
        """Restart the consumer's ack wait for this message."""
        self._acknowledge(IN_PROGRESS)

    def term(self) -> None:
        """Never redeliver it."""
        self._acknowledge(TERM)

    def _acknowledge(self, word: bytes) -> None:
        if not self.reply.startswith("$JS.ACK."):
            raise NotJetStream(f"message on {self.subject} was not delivered by JetStream")
        self._conn.publish(self.reply, word)

    def delivery(self) -> Delivery:
        return parse_delivery(self.reply)


def sequences(reply: str) -> tuple[int, int, int, int]:
    """(delivered, stream sequence, consumer sequence, pending) of a JetStream delivery, from
    its reply subject, without building a `Delivery` (the readers' and workers' hot path)."""
    tokens = reply.split(".")
    first = 2 if len(tokens) == 9 else 4
    try:
        return (
            int(tokens[first + 2]),
            int(tokens[first + 3]),
            int(tokens[first + 4]),
            int(tokens[first + 6]),
        )
    except (ValueError, IndexError):
        raise NotJetStream(f"not a JetStream ack subject: {reply!r}") from None


def parse_delivery(reply: str) -> Delivery:
    tokens = reply.split(".")
    n = len(tokens)
    if n < 9 or tokens[0] != "$JS" or tokens[1] != "ACK":
        raise NotJetStream(f"not a JetStream ack subject: {reply!r}")
    # $JS.ACK.<stream>.<consumer>.<n>.<sseq>.<cseq>.<ts>.<pending>, or with <domain>.<account
    # hash> after ACK and a random token at the end (11 or 12 tokens).
    first = 2 if n == 9 else 4
    try:
        delivered, sseq, cseq, ts, pending = (int(t) for t in tokens[first + 2 : first + 7])
    except ValueError:
        raise NotJetStream(f"not a JetStream ack subject: {reply!r}") from None
    return Delivery(tokens[first], tokens[first + 1], delivered, sseq, cseq, ts, pending)


@dataclass(frozen=True, slots=True)
class PubAck:
    stream: str
    seq: int
    duplicate: bool


class JetStreamError(NatsError):
    """JetStream answered with an error (`err_code` is its code, e.g. 10071)."""

    def __init__(self, subject: str, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{subject}: {description} ({err_code})")
        self.code = code
        self.err_code = err_code
        self.description = description


def parse_pub_ack(subject: str, msg: protocol.Msg) -> PubAck:
    """The PubAck answering a publish to `subject`, or `JetStreamError`."""
    try:
        answer: Any = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise NatsError(f"{subject}: the answer is not a PubAck: {msg.data[:200]!r}")
    error = answer.get("error")
    if error is not None:
        raise JetStreamError(
            subject,
            int(error.get("code", 0)),
            int(error.get("err_code", 0)),
            str(error.get("description")),
        )
    seq = answer.get("seq")
    if not isinstance(seq, int):
        raise NatsError(f"{subject}: the answer is not a PubAck: {msg.data[:200]!r}")
    return PubAck(str(answer.get("stream", "")), seq, bool(answer.get("duplicate")))
