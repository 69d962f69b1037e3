"""Fencing on a real nats-server: the leader record's compare-and-set, and appends refused to a
Brain whose generation is stale or can no longer be confirmed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.eventstore import NEW
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.leader import Leader, LeaderRecord, LeadershipTaken
from adapters.nats.server import NatsServerProcess
from domain.commands import LaunchTask, ReportServiceHealth, RequestCancel, StartBrain
from domain.events import JobDispatched
from services.brain.leadership import Fenced, Leadership
from services.executor import CommandExecutor
from tests.polling import until
from tests.support.proxy import HoldingProxy


@dataclass
class Brain:
    """One Brain's connection, event store, fenced executor and leadership (as `baker brain`
    wires it)."""

    nc: Client
    store: JetStreamEventStore
    executor: CommandExecutor
    leadership: Leadership
    lost: list[Leader] = field(default_factory=list)
    lost_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_lost(self, leader: Leader) -> None:
        self.lost.append(leader)
        self.lost_event.set()


@pytest.fixture
async def brains(
    nats_server: NatsServerProcess, provisioned: Client
) -> AsyncIterator[Callable[..., Any]]:
    made: list[Brain] = []

    async def make(name: str, url: str | None = None, **options: Any) -> Brain:
        nc = await Client.connect(Options(url=url or nats_server.url, name=f"test-{name}"))
        store = JetStreamEventStore(nc)
        leadership = Leadership(LeaderRecord(nc), name, "1", **options)
        executor = CommandExecutor(store, fence=leadership)
        brain = Brain(nc, store, executor, leadership)
        await leadership.watch(brain.on_lost)
        made.append(brain)
        return brain

    yield make
    for brain in made:
        await brain.leadership.close()
        await brain.store.close()
        await brain.nc.close()


def dispatched() -> list[JobDispatched]:
    return [JobDispatched(job_type="command", payload={"command": "echo hi"})]


def job_id() -> str:
    return f"job-{uuid.uuid4().hex[:12]}"


def refuses(leadership: Leadership) -> bool:
    try:
        leadership.check("job")
    except Fenced:
        return True
    return False


async def test_an_append_with_a_stale_generation_is_refused_and_stores_nothing(
    brains: Callable[..., Any], provisioned: Client
) -> None:
    blue, green = await brains("blue"), await brains("green")
    taken = await blue.leadership.take()
    first = job_id()
    [stored] = await blue.executor.append("job", first, dispatched(), NEW)
    assert stored.envelope.generation == taken.generation  # stamped with the generation

    newer = await green.leadership.take()
    assert newer.generation == taken.generation + 1
    await asyncio.wait_for(blue.lost_event.wait(), 10)  # the watch delivered the new record
    assert [(x.instance, x.generation) for x in blue.lost] == [("green", newer.generation)]
    assert not blue.leadership.leading

    reader = JetStreamEventStore(provisioned)
    head = await reader.head_seq()
    second = job_id()
    with pytest.raises(Fenced, match="the leader is green"):
        await blue.executor.append("job", second, dispatched(), NEW)
    with pytest.raises(Fenced):
        await blue.executor.execute("job", first, RequestCancel(reason="from a stale Brain"))
    launch = LaunchTask(goal="echo x", mode="script", timeout_seconds=5)
    with pytest.raises(Fenced):  # tasks are fenced like jobs
        await blue.executor.execute("task", "task-fenced", launch, new=True)
    assert await reader.head_seq() == head  # nothing reached the log
    assert not (await reader.load("job", second)).exists
    assert len((await reader.load("job", first)).events) == 1
    # A fenced Brain still records its own role changes, and its monitor still records
    # service health (only jobs and tasks are fenced).
    await blue.executor.execute("brain", "blue", StartBrain(role="active", version="1"))
    health = ReportServiceHealth(up=True, service="worker", instance="w-1")
    await blue.executor.execute("service", "w-1", health)
    assert await reader.head_seq() == head + 2
    await reader.close()


async def test_a_brain_that_cannot_confirm_its_generation_refuses(
    brains: Callable[..., Any], nats_server: NatsServerProcess, provisioned: Client
) -> None:
    host, port = nats_server.url.removeprefix("nats://").rsplit(":", 1)
    proxy = HoldingProxy(host, int(port))
    await proxy.start()
    try:
        blue = await brains(
            "blue", f"nats://127.0.0.1:{proxy.port}", confirm_every=0.1, max_unconfirmed=0.5
        )
        await blue.leadership.take()
        await blue.executor.append("job", job_id(), dispatched(), NEW)
        reader = JetStreamEventStore(provisioned)
        head = await reader.head_seq()

        proxy.hold_replies()  # the server can no longer answer this Brain
        await until(lambda: refuses(blue.leadership), what="the lease to run out")
        assert blue.leadership.leading  # nobody else took over: it just cannot confirm
        with pytest.raises(Fenced, match="could not confirm generation"):
            await blue.executor.append("job", job_id(), dispatched(), NEW)

        proxy.release()
        await until(lambda: not refuses(blue.leadership), what="confirmed again")
        assert await reader.head_seq() == head  # the refused append never reached the log
        await blue.executor.append("job", job_id(), dispatched(), NEW)  # leading, confirmed
        assert await reader.head_seq() == head + 1
        await reader.close()
    finally:
        proxy.release()
        await proxy.close()


async def test_a_compare_and_set_race_has_exactly_one_winner(
    nats_server: NatsServerProcess, provisioned: Client
) -> None:
    conns = [
        await Client.connect(Options(url=nats_server.url, name=f"racer-{i}")) for i in range(2)
    ]
    records = [LeaderRecord(nc) for nc in conns]
    try:
        for round_ in range(10):
            before = await records[0].read()
            outcomes = await asyncio.gather(
                records[0].take("blue", "1", before),
                records[1].take("green", "1", before),
                return_exceptions=True,
            )
            winners = [o for o in outcomes if isinstance(o, Leader)]
            losers = [o for o in outcomes if isinstance(o, LeadershipTaken)]
            assert len(winners) == 1 and len(losers) == 1, (round_, outcomes)
            stored = await records[1].read()
            assert stored is not None
            assert (stored.instance, stored.generation) == (
                winners[0].instance,
                (before.generation if before else 0) + 1,
            )
    finally:
        for record, nc in zip(records, conns, strict=True):
            await record.close()
            await nc.close()


async def test_two_brains_taking_at_once_end_with_one_leader(
    brains: Callable[..., Any],
) -> None:
    blue, green = await brains("blue"), await brains("green")
    taken = await asyncio.gather(blue.leadership.take(), green.leadership.take())
    assert sorted(t.generation for t in taken) == [1, 2]  # the loser went on top of the winner
    last = max(taken, key=lambda t: t.generation)
    first = blue if last.instance == "green" else green
    winner = green if first is blue else blue
    await asyncio.wait_for(first.lost_event.wait(), 10)
    assert winner.leadership.leading and not first.leadership.leading
    assert refuses(first.leadership) and not refuses(winner.leadership)


async def test_a_refused_compare_and_set_does_not_move_the_watched_record(
    brains: Callable[..., Any],
) -> None:
    blue, green = await brains("blue"), await brains("green")
    stale = await blue.leadership.refresh()  # nothing yet
    await blue.leadership.take()
    with pytest.raises(LeadershipTaken):
        await green.leadership.record.take("green", "1", stale)  # from an out-of-date record
    # A later, stored change is delivered after the refused one would have been: once blue
    # sees it, it has also seen (and ignored) everything before it.
    await blue.leadership.take()
    await until(
        lambda: blue.leadership.current is not None and blue.leadership.current.generation == 2
    )
    assert blue.lost == [] and blue.leadership.leading
