"""A durable work-queue consumer as the services see it: fetch a batch of deliveries, settle
each one (ack, nak with a delay, or term). The task service ingests the task runners'
`baker.tasks.status|result.<taskId>` messages (consumer `brain-tasks`) through it.

Semantics every implementation keeps (`tests/contract/inbox_contract.py`):

- `fetch(n, wait)` returns up to `n` deliveries available now, else waits up to `wait` seconds
  for the first one, else returns nothing.
- A delivery is held until settled: `ack` removes it, `term` removes it for good without
  success, `nak(delay)` hands it out again after `delay` seconds with `deliveries` one higher.
- `sequence` orders deliveries by arrival in the queue and is unique per message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol


class Delivery(Protocol):
    @property
    def subject(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str] | None: ...

    @property
    def sequence(self) -> int:
        """The message's position in its queue (the stream sequence)."""

    @property
    def deliveries(self) -> int:
        """How many times it has been handed out, this time included (1 the first time)."""

    async def ack(self) -> None: ...

    async def nak(self, delay: float = 0.0) -> None: ...

    async def term(self) -> None: ...


class Inbox(Protocol):
    async def fetch(self, batch: int, wait: float) -> Sequence[Delivery]: ...

    async def close(self) -> None: ...


OpenInbox = Callable[[], Awaitable[Inbox]]
