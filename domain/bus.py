"""A core NATS message in our own types, and the errors of request/reply.

The services' bus port (`services.ports.bus`) and every implementation of it (the NATS adapter,
the in-memory fake) share these, so no service ever sees a client library's message type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """One message as a subscriber or a requester receives it.

    `reply` is the subject an answer goes to (empty when the sender expects none);
    `headers` is None when the message carried none.
    """

    subject: str
    data: bytes = b""
    headers: Mapping[str, str] | None = None
    reply: str = ""


class NoResponders(Exception):
    """A request found nobody subscribed to its subject (so nobody received it)."""


class BusClosed(ConnectionError):
    """The connection is closed: nothing more can be sent or received."""
