"""The leader record (who leads, with which fencing generation) as leadership uses it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from domain.handoff import Leader
from services.ports.topics import Subscription


class LeaderRecords(Protocol):
    async def read(self) -> Leader | None:
        """The current record (a fresh read from the server), None if there is none."""
        ...

    async def take(self, instance: str, version: str, after: Leader | None) -> Leader:
        """Become leader with generation `after.generation + 1` if `after` is still the
        current record (compare-and-set), else `LeadershipTaken`."""
        ...

    async def watch(self, on_record: Callable[[Leader], Awaitable[None]]) -> Subscription:
        """Call `on_record` with the current record, then with every stored change in order."""
        ...

    async def close(self) -> None: ...
