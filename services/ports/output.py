"""Live output of running jobs (DESIGN §10): the worker publishes it, the API follows one
job's while a client watches. Core pub/sub: not stored, no delivery guarantee, whoever
listens at the time hears it.

Implemented over NATS in `adapters/nats/output.py` and in memory in `tests/fakes/output.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from services.ports.topics import Subscription


class OutputSink(Protocol):
    def send(self, job_id: str, payload: bytes) -> None:
        """Queue one encoded output message of `job_id` for sending. Never waits (a job's
        output must not slow the job down); raises when it cannot be sent at all."""
        ...


class OutputFeed(Protocol):
    async def follow(self, job_id: str, on_message: Callable[[bytes], None]) -> Subscription:
        """Call `on_message(payload)` for every output message of `job_id` published from
        now on (called on the event loop, so it must not block)."""
        ...
