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


def frame(item: StoredEvent, by_seq: bool = False) -> bytes:
    """One event: `id` is the aggregate version on a job's stream, the stream sequence on the
    stream of all events (each is what `Last-Event-ID` resumes from), `event` its type."""
    doc = {"seq": item.seq, **to_document(item.envelope)}
    event_id = item.seq if by_seq else item.envelope.version
    return (
        f"id: {event_id}\nevent: {item.envelope.type}\n".encode()
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
        if not state.terminal:
            async for live in _live(queue, ctx.keepalive, last_seq):
                if isinstance(live, bytes):
                    yield live
                    continue
                state = lifecycle.evolve("job", state, live.envelope.data)
                yield frame(live)
                if state.terminal:
                    break
            else:
                return  # the feed ended before the job did: `_live` said so
        yield _end(state.status)
    finally:
        bus.unsubscribe(job_id, queue)


async def _live(
    queue: asyncio.Queue[StoredEvent | None], keepalive: float, after_seq: int
) -> AsyncIterator[StoredEvent | bytes]:
    """Live events after `after_seq` (those already replayed are skipped), keep-alive comments
    while it is quiet, and the end-of-feed frame if the bus drops us."""
    while True:
        try:
            async with asyncio.timeout(keepalive):
                item = await queue.get()
        except TimeoutError:
            yield b": keep-alive\n\n"
            continue
        if item is None:
            yield _GONE
            return
        if item.seq > after_seq:
            yield item


async def follow_all(
    ctx: ApiContext, aggregate: str | None, after_seq: int = 0
) -> AsyncIterator[bytes]:
    """Every event stored from now on (of one aggregate kind when given), with keep-alives;
    with `after_seq` (a `Last-Event-ID`) the events since then are replayed first."""
    bus: EventBus = ctx.bus
    queue = bus.subscribe(ALL)
    last = after_seq
    try:
        yield b": connected\n\n"
        if after_seq:
            async for stored in ctx.store.read_all(after_seq + 1):
                if isinstance(stored, StoredEvent):
                    last = stored.seq
                    if aggregate is None or stored.envelope.aggregate == aggregate:
                        yield frame(stored, by_seq=True)
        async for live in _live(queue, ctx.keepalive, last):
            if isinstance(live, bytes):
                yield live
            elif aggregate is None or live.envelope.aggregate == aggregate:
                yield frame(live, by_seq=True)
    finally:
        bus.unsubscribe(ALL, queue)
