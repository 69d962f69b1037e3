"""What the HTTP API needs from the rest of the system (wired by `services.bootstrap`), and the
small pieces its routers share: the context lookup, error answers, strict number and time
parsing, and the documents every router returns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from adapters.eventstore import EventStore, StoreUnavailable
from adapters.readmodel import Reader
from domain.events import parse_time as domain_parse_time
from services.brain.dispatcher import Dispatcher
from services.brain.idempotency import IdempotentDispatch
from services.brain.leadership import Fenced
from services.ports.jobs import JobQueue
from services.ports.output import OutputFeed

log = logging.getLogger("baker.api")
MAX_SEQ = 2**63 - 1  # SQLite's largest integer


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
    store: EventStore
    dispatcher: Dispatcher
    queue: JobQueue
    read_model: Reader
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    brain: BrainStatus = field(default_factory=BrainStatus)
    # Read-your-writes for pages: wait until the read model holds an event (the Brain's own
    # projector); `written` is the newest event this API appended.
    wait_for: Callable[[int, float], Awaitable[bool]] | None = None
    written: int = 0
    # Live counters. `malformed` is the job ingest's count of malformed messages, or a dict
    # {source: count} when more paths (task ingest, monitor, heartbeats, handoff) report theirs.
    counters: Callable[[], dict[str, Any]] = dict
    health: Callable[[], Awaitable[dict[str, Any]]] | None = None
    # POST /api/tasks: (body) -> (HTTP status, JSON answer); None while task pods are off.
    launch_task: Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]] | None = None
    # POST /api/tasks/{id}/cancel: (task id, reason) -> (HTTP status, JSON answer).
    cancel_task: Callable[[str, str | None], Awaitable[tuple[int, dict[str, Any]]]] | None = None
    # The NATS connection's state for `/api/system/health`: {"status": ..., "server"?: ...}.
    nats_check: Callable[[], dict[str, Any]] | None = None
    keepalive: float = 15.0
    max_body: int = 1 << 20
    bus: Any = None  # services.api.bus.EventBus: live events for SSE
    scheduler: Any = None  # services.brain.scheduler.Scheduler: the Brain's schedules
    output: OutputFeed | None = None  # live job output, interleaved into a job's SSE stream
    # POST /api/jobs with an idempotency key (None: such requests are refused with 503).
    idempotent: IdempotentDispatch | None = None
    # `baker api`: only reads; every other method is refused (405) naming `brain_url`, the
    # Brain's API, where writes go.
    read_only: bool = False
    brain_url: str | None = None

    def wrote(self, seq: int) -> None:
        self.written = max(self.written, seq)

    async def caught_up(self, timeout: float = 2.0) -> bool:
        """Wait (bounded) until the read model holds every event this API appended; False
        when it did not get there in time."""
        if self.wait_for is None or not self.written:
            return True
        return await self.wait_for(self.written, timeout)


def ctx_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def error(status: int, reason: str, **extra: Any) -> JSONResponse:
    """An error answer: JSON `{"error": reason, ...}`."""
    return JSONResponse({"error": reason, **extra}, status_code=status)


def parse_count(text: str) -> int | None:
    """A non-negative integer written in ASCII digits, capped at `MAX_SEQ`; else None.

    `str.isdigit` alone is not enough: it accepts '²' and other digits `int` refuses, and
    `int` refuses more than 4300 digits.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    significant = text.lstrip("0") or "0"
    return MAX_SEQ if len(significant) > 19 else min(int(significant), MAX_SEQ)


def parse_time(text: str) -> datetime | None:
    """An ISO-8601 time in UTC (a time without an offset is taken as UTC), or None."""
    try:
        return domain_parse_time(text)
    except ValueError:
        return None


class ErrorBody(BaseModel):
    """Every error answer; `field` names the bad input when there is one."""

    model_config = ConfigDict(extra="allow")
    error: str
    field: str | None = None


class Document(BaseModel):
    """A JSON document with camelCase keys; keys added later pass through."""

    model_config = ConfigDict(alias_generator=to_camel, extra="allow")


class EventDoc(Document):
    """A stored event (DESIGN §4) with its stream sequence."""

    seq: int
    event_id: str
    type: str
    aggregate: str
    aggregate_id: str
    version: int
    occurred_at: str
    schema_version: int = Field(alias="schema")
    data: dict[str, Any]
    trace_id: str | None = None
    causation_id: str | None = None


def unavailable_answer(exc: Exception, path: str) -> JSONResponse | None:
    """The answer to a failure any route may meet, or None: the event store down, or this
    Brain fenced (another took a newer generation: this one must change nothing any more)."""
    if isinstance(exc, StoreUnavailable):
        return error(503, f"event store unavailable: {exc}")
    if isinstance(exc, Fenced):
        log.warning("refused %s: %s", path, exc)
        return error(503, f"this Brain is no longer the leader: {exc}")
    return None
