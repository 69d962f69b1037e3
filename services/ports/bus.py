"""The core publish/subscribe and request/reply port (no JetStream): heartbeats, the
extensions registry, service health, task launch and cancel requests.

Semantics every implementation keeps (the contract suite in `tests/contract/bus_contract.py`
runs on the NATS adapter and on the in-memory fake):

- Subjects are dot-separated tokens; a subscription may use `*` (exactly one token) and `>`
  (one or more tokens, last only).
- A subscription's handler is awaited for one message at a time, in the order published;
  a handler that raises loses that message only.
- Subscribers with the same `queue` share the messages of the subject: each goes to one.
- `request` raises `NoResponders` when nobody listens and `TimeoutError` when nobody answered
  in time; `BusClosed` once the connection is closed (also from `publish`).
- `flush` returns once everything sent before it (subscriptions included) is in place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from domain.bus import BusClosed, Message, NoResponders

Handler = Callable[[Message], Awaitable[None]]

__all__ = ["Bus", "BusClosed", "Handler", "Message", "NoResponders", "Subscription", "respond"]


class Subscription(Protocol):
    async def unsubscribe(self) -> None:
        """Stop receiving; messages not yet handed to the handler are dropped."""


class Bus(Protocol):
    @property
    def connected(self) -> bool:
        """The connection is up now (a reconnecting one is not)."""

    async def publish(
        self, subject: str, data: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """Send one message (fire and forget)."""

    async def subscribe(self, subject: str, handler: Handler, *, queue: str = "") -> Subscription:
        """Receive every message on `subject` (a wildcard pattern allowed) in `handler`."""

    async def request(
        self,
        subject: str,
        data: bytes = b"",
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> Message:
        """Send a request and return the first answer."""

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until the server has seen everything sent so far."""


async def respond(bus: Bus, request: Message, data: bytes) -> None:
    """Answer a request; a message that expects no answer gets none."""
    if request.reply:
        await bus.publish(request.reply, data)
