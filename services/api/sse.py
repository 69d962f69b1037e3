"""Server-Sent Events: a job's history then its live events, with its live output
interleaved as `event: output` frames; or every new event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import orjson

from adapters.eventstore import StoredEvent
from domain import lifecycle
from domain.events import to_document
from domain.wire import WireError
from domain.wire_output import decode_output, encode_output
from services.api.bus import ALL, EventBus, Feed
from services.api.context import ApiContext
from services.ports.topics import Subscription

log = logging.getLogger("baker.api.sse")

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


def output_frame(payload: bytes, job_id: str) -> bytes | None:
    """An `event: output` frame of one live output message (re-encoded, so nothing a
    publisher sent can break the framing), or None for a message that is not one of the
    job's."""
    try:
        msg = decode_output(payload)
    except WireError as exc:
        log.debug("unreadable output message of %s: %s", job_id, exc)
        return None
    if msg.id != job_id:
        return None
    data = encode_output(msg.id, msg.attempt, msg.seq, msg.stream, msg.data)
    return b"event: output\ndata: " + data + b"\n\n"


async def _follow_output(ctx: ApiContext, job_id: str, queue: Feed) -> Subscription | None:
    """Put the job's live output into its subscriber's queue as frames. Output is best
    effort: when the queue is half full it is dropped, keeping the room for the events."""
    if ctx.output is None:
        return None
    room = max(1, queue.maxsize // 2)

    def on_output(payload: bytes) -> None:
        if queue.qsize() < room and (framed := output_frame(payload, job_id)) is not None:
            queue.put_nowait(framed)

    return await ctx.output.follow(job_id, on_output)


async def open_job_stream(
    ctx: ApiContext, job_id: str, after_version: int
) -> AsyncIterator[bytes] | None:
    """The stream for one job, or None when the job does not exist."""
    bus: EventBus = ctx.bus
    queue = await bus.subscribe(job_id)  # before reading the history: nothing falls between
    output: Subscription | None = None
    try:
        output = await _follow_output(ctx, job_id, queue)
        history = await ctx.store.load("job", job_id)
    except BaseException:
        await _leave(bus, job_id, queue, output)
        raise
    if not history.exists:
        await _leave(bus, job_id, queue, output)
        return None
    return _job_stream(ctx, bus, queue, job_id, history.events, after_version, output)


async def _leave(bus: EventBus, job_id: str, queue: Feed, output: Subscription | None) -> None:
    bus.unsubscribe(job_id, queue)
    if output is not None:
        await output.unsubscribe()


async def _job_stream(
    ctx: ApiContext,
    bus: EventBus,
    queue: Feed,
    job_id: str,
    events: list[StoredEvent],
    after_version: int,
    output: Subscription | None = None,
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
        await _leave(bus, job_id, queue, output)


async def _live(
    queue: Feed, keepalive: float, after_seq: int
) -> AsyncIterator[StoredEvent | bytes]:
    """Live events after `after_seq` (those already replayed are skipped), frames put in the
    queue as they are (live output), keep-alive comments while it is quiet, and the
    end-of-feed frame if the bus drops us."""
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
        if isinstance(item, bytes) or item.seq > after_seq:
            yield item


async def follow_all(
    ctx: ApiContext, aggregate: str | None, after_seq: int = 0
) -> AsyncIterator[bytes]:
    """Every event stored from now on (of one aggregate kind when given), with keep-alives;
    with `after_seq` (a `Last-Event-ID`) the events since then are replayed first."""
    bus: EventBus = ctx.bus
    queue = await bus.subscribe(ALL)
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
