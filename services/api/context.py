"""What the HTTP API needs from the rest of the system, wired by `services.bootstrap`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS

from adapters.eventstore import EventStore
from adapters.nats.job_queue import JobQueue
from adapters.sqlite import ReadModel
from services.brain.dispatcher import Dispatcher


@dataclass
class BrainStatus:
    """The Brain's blue-green role as the API sees it (`active` serves requests)."""

    state: str = "active"
    version: str = "0.1.0"
    instance: str = "brain"
    mode: str = "single"
    started: float = field(default_factory=lambda: asyncio.get_event_loop().time())
    inflight: int = 0  # requests being served that may change something (drain waits for 0)

    @property
    def accepting(self) -> bool:
        return self.state == "active"


@dataclass
class ApiContext:
    nc: NATS
    store: EventStore
    dispatcher: Dispatcher
    queue: JobQueue
    read_model: ReadModel
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    brain: BrainStatus = field(default_factory=BrainStatus)
    # Read-your-writes: wait until the read model holds an event (in-process projector).
    wait_for: Callable[[int, float], Awaitable[bool]] | None = None
    counters: Callable[[], dict[str, Any]] = dict
    health: Callable[[], Awaitable[dict[str, Any]]] | None = None
    # POST /api/tasks: (body) -> (HTTP status, JSON answer); None while task pods are off.
    launch_task: Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]] | None = None
    keepalive: float = 15.0
    max_body: int = 1 << 20
    bus: Any = None  # services.api.bus.EventBus: live events for SSE
