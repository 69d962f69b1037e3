"""The SSE event bus follows the log only while someone listens: nothing is read for nobody,
a subscriber gets every event stored after `subscribe` returns (in order, none missed), the
last one to leave stops the follower, a later subscriber starts a new one at the head, and a
stopping process ends every feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from adapters.eventstore import BadEvent, StoredEvent
from adapters.eventstore.memory import InMemoryEventStore
from domain.commands import DispatchJob, RequestCancel
from domain.specs import parse_job_spec
from services.api.bus import ALL, EventBus, Feed
from services.executor import CommandExecutor
from tests.polling import until

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


class CountingStore(InMemoryEventStore):
    """Counts the followers reading the log now, and the heads asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.tailing = 0
        self.head_fails: Exception | None = None

    async def head_seq(self) -> int:
        if self.head_fails is not None:
            raise self.head_fails
        return await super().head_seq()

    async def tail_batches(
        self, from_seq: int, *, max_batch: int = 1000, max_wait: float = 0.01, idle: float = 1.0
    ) -> AsyncGenerator[list[StoredEvent | BadEvent], None]:
        self.tailing += 1
        try:
            async for batch in super().tail_batches(
                from_seq, max_batch=max_batch, max_wait=max_wait, idle=idle
            ):
                yield batch
        finally:
            self.tailing -= 1


async def dispatch(store: InMemoryEventStore, job_id: str) -> int:
    outcome = await CommandExecutor(store).execute("job", job_id, DispatchJob(spec=SPEC), new=True)
    return outcome.position.seq


async def take(feed: Feed, count: int) -> list[Any]:
    return [await asyncio.wait_for(feed.get(), 10) for _ in range(count)]


@pytest.fixture
async def bus() -> AsyncGenerator[tuple[EventBus, CountingStore], None]:
    store = CountingStore()
    the_bus = EventBus(store)
    stop = asyncio.Event()
    running = asyncio.create_task(the_bus.run(stop))
    yield the_bus, store
    stop.set()
    await running


async def test_nothing_follows_the_log_while_nobody_listens(
    bus: tuple[EventBus, CountingStore],
) -> None:
    the_bus, store = bus
    for i in range(3):
        await dispatch(store, f"job-{i}")
    assert not the_bus.following
    assert store.tailing == 0
    assert the_bus.follows == 0


async def test_a_subscriber_gets_every_event_stored_after_it_subscribed_in_order(
    bus: tuple[EventBus, CountingStore],
) -> None:
    the_bus, store = bus
    await dispatch(store, "job-before")  # before: not delivered
    feed = await the_bus.subscribe(ALL)
    seqs = [await dispatch(store, f"job-{i}") for i in range(5)]
    got = await take(feed, 5)
    assert [item.seq for item in got] == seqs
    assert feed.empty()


async def test_a_job_subscriber_gets_only_that_jobs_events(
    bus: tuple[EventBus, CountingStore],
) -> None:
    the_bus, store = bus
    feed = await the_bus.subscribe("job-a")
    await dispatch(store, "job-b")
    first = await dispatch(store, "job-a")
    cancel = await CommandExecutor(store).execute("job", "job-a", RequestCancel(reason="x"))
    got = await take(feed, 2)
    assert [item.seq for item in got] == [first, cancel.position.seq]


async def test_the_last_subscriber_leaving_stops_the_follower_and_a_new_one_starts_at_the_head(
    bus: tuple[EventBus, CountingStore],
) -> None:
    the_bus, store = bus
    one = await the_bus.subscribe(ALL)
    two = await the_bus.subscribe("job-x")
    assert the_bus.follows == 1  # one follower for every subscriber
    the_bus.unsubscribe(ALL, one)
    assert the_bus.following  # `two` still listens
    the_bus.unsubscribe("job-x", two)
    assert not the_bus.following
    await until(lambda: store.tailing == 0, "the follower stopped reading the log")
    await dispatch(store, "job-unheard")  # nobody listens: never delivered
    again = await the_bus.subscribe(ALL)
    assert the_bus.follows == 2
    seq = await dispatch(store, "job-heard")
    assert [item.seq for item in await take(again, 1)] == [seq]
    assert again.empty()


async def test_subscribers_joining_at_once_share_one_follower(
    bus: tuple[EventBus, CountingStore],
) -> None:
    the_bus, store = bus
    feeds = await asyncio.gather(*(the_bus.subscribe(ALL) for _ in range(5)))
    assert the_bus.follows == 1
    seq = await dispatch(store, "job-1")
    for feed in feeds:
        assert [item.seq for item in await take(feed, 1)] == [seq]


async def test_a_log_that_cannot_be_read_is_an_error_to_the_subscriber_and_leaves_no_one(
    bus: tuple[EventBus, CountingStore],
) -> None:
    the_bus, store = bus
    store.head_fails = ConnectionError("no server")
    with pytest.raises(ConnectionError, match="no server"):
        await the_bus.subscribe(ALL)
    assert not the_bus.following
    store.head_fails = None
    feed = await the_bus.subscribe(ALL)  # a later subscriber starts afresh
    seq = await dispatch(store, "job-1")
    assert [item.seq for item in await take(feed, 1)] == [seq]


async def test_a_subscriber_that_falls_behind_is_dropped_and_told() -> None:
    store = CountingStore()
    the_bus = EventBus(store, queue_size=2)
    slow = await the_bus.subscribe(ALL)
    for i in range(4):
        await dispatch(store, f"job-{i}")
    got = []
    while (item := await asyncio.wait_for(slow.get(), 10)) is not None:
        got.append(item)
    assert len(got) < 4  # dropped, and told so by the `None` at the end
    assert not the_bus.following  # it was the only one


async def test_stopping_ends_every_feed_and_later_subscribers_get_an_ended_feed() -> None:
    store = CountingStore()
    the_bus = EventBus(store)
    stop = asyncio.Event()
    running = asyncio.create_task(the_bus.run(stop))
    feed = await the_bus.subscribe("job-1")
    stop.set()
    await running
    assert await take(feed, 1) == [None]
    assert not the_bus.following
    late = await the_bus.subscribe(ALL)
    assert await take(late, 1) == [None]
    assert store.tailing == 0
