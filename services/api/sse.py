"""Server-Sent Events: a job's history then its live events; or every new event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from adapters.eventstore import StoredEvent
from domain import lifecycle
from domain.events import to_document
from services.api.bus import ALL, EventBus
from services.api.context import ApiContext

_GONE = b'event: error\ndata: {"error": "the live feed ended (server stopping, or this client fell behind); reconnect"}\n\n'  # noqa: E501
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def frame(item: StoredEvent) -> bytes:
    """One event: `id` is the aggregate version (for `Last-Event-ID`), `event` its type."""
    doc = {"seq": item.seq, **to_document(item.envelope)}
    return (
        f"id: {item.envelope.version}\nevent: {item.envelope.type}\n".encode()
        + b"data: " + orjson.dumps(doc) + b"\n\n"
    )  # fmt: skip


def _end(status: str) -> bytes:
    return b"event: end\ndata: " + orjson.dumps({"status": status}) + b"\n\n"


async def open_job_stream(
    ctx: ApiContext, job_id: str, after_version: int
) -> AsyncIterator[bytes] | None:
    """The stream for one job, or None when the job does not exist."""
    bus: EventBus = ctx.bus
    queue = bus.subscribe(job_id)  # before reading the history: nothing falls in between
    history = await ctx.store.load("job", job_id)
    if not history.exists:
        bus.unsubscribe(job_id, queue)
        return None
    return _job_stream(ctx, bus, queue, job_id, history.events, after_version)


async def _job_stream(
    ctx: ApiContext,
    bus: EventBus,
    queue: asyncio.Queue[StoredEvent | None],
    job_id: str,
    events: list[StoredEvent],
    after_version: int,
) -> AsyncIterator[bytes]:
    state = lifecycle.initial_state("job")
    last_seq = 0
    try:
        for item in events:
            state = lifecycle.evolve("job", state, item.envelope.data)
            last_seq = item.seq
            if item.envelope.version > after_version:
                yield frame(item)
        while not state.terminal:
            try:
                async with asyncio.timeout(ctx.keepalive):
                    item = await queue.get()
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is None:
                yield _GONE
                return
            if item.seq <= last_seq:
                continue  # already in the replayed history
            last_seq = item.seq
            state = lifecycle.evolve("job", state, item.envelope.data)
            yield frame(item)
        yield _end(state.status)
    finally:
        bus.unsubscribe(job_id, queue)


async def follow_all(ctx: ApiContext, aggregate: str | None) -> AsyncIterator[bytes]:
    """Every event stored from now on (of one aggregate kind when given), with keep-alives."""
    bus: EventBus = ctx.bus
    queue = bus.subscribe(ALL)
    try:
        yield b": connected\n\n"
        while True:
            try:
                async with asyncio.timeout(ctx.keepalive):
                    item = await queue.get()
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is None:
                yield _GONE
                return
            if aggregate is None or item.envelope.aggregate == aggregate:
                yield frame(item)
    finally:
        bus.unsubscribe(ALL, queue)
