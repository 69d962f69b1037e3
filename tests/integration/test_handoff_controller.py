"""The Brain role controller on a real nats-server, with small timeouts: a stopping (or fenced)
Brain refuses requests while it drains, the drain cap bounds both drains, a pending Brain told
`abort` keeps asking, and one that hears nothing starts fresh after its timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.nats.bus import NatsBus
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.leader import LeaderRecord
from adapters.nats.server import NatsServerProcess
from adapters.sqlite import ReadModel
from domain import commands as c
from domain.handoff import HANDOFF_SUBJECT, HandoffMessage, decode_handoff
from services.api.app import create_app
from services.api.context import ApiContext, BrainStatus
from services.bootstrap.parts import build_brain
from services.brain.brain import Brain, BrainSettings
from services.brain.controller import Controller, HandoffSettings
from services.brain.leadership import Leadership
from services.executor import CommandExecutor
from services.topic import BusTopic
from tests.polling import until

FAST = HandoffSettings(pending_timeout=30, drain_cap=30, ack_timeout=10, ready_every=0.2)


class StuckBrain(Brain):
    """A real Brain whose in-flight work, once told to stop, takes until `release`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()
        self.finishing = asyncio.Event()
        self.done = asyncio.Event()

    async def run_work(self, stop: asyncio.Event) -> None:
        try:
            await super().run_work(stop)
            self.finishing.set()
            await self.release.wait()
        finally:
            self.done.set()


@dataclass
class Node:
    nc: Client
    store: JetStreamEventStore
    brain: Brain
    status: BrainStatus
    controller: Controller
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        return self.status.state


@dataclass
class Cluster:
    url: str
    tmp: Path
    nodes: list[Node] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    async def start(
        self,
        name: str,
        role: Literal["active", "pending"],
        settings: HandoffSettings = FAST,
        brain_cls: type[Brain] = Brain,
        controller_cls: type[Controller] = Controller,
    ) -> Node:
        nc = await Client.connect(Options(url=self.url, name=f"test-{name}"))
        store = JetStreamEventStore(nc)
        leadership = Leadership(LeaderRecord(nc), name, name)
        executor = CommandExecutor(store, fence=leadership)
        settings_ = BrainSettings(check_every=0.2)
        brain = build_brain(nc, executor, settings_, instance=name, kind=brain_cls)
        status = BrainStatus(instance=name, version=name, state="pending", mode=role)

        async def stale() -> list[str]:
            return list(self.stale)

        controller = controller_cls(
            BusTopic(NatsBus(nc), HANDOFF_SUBJECT), executor, brain, status, leadership, settings,
            stale_handoffs=stale,
        )  # fmt: skip
        node = Node(nc, store, brain, status, controller)
        node.task = asyncio.create_task(controller.run(role, node.stop), name=name)
        self.nodes.append(node)
        return node


@pytest.fixture
async def cluster(
    nats_server: NatsServerProcess, provisioned: Client, tmp_path: Path
) -> AsyncIterator[Cluster]:
    cl = Cluster(nats_server.url, tmp_path)
    yield cl
    for node in cl.nodes:
        node.stop.set()
        if isinstance(node.brain, StuckBrain):
            node.brain.release.set()
    for node in cl.nodes:
        assert node.task is not None
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(node.task, 30)
        if isinstance(node.brain, StuckBrain):  # work the drain cap left behind
            await asyncio.wait_for(node.brain.done.wait(), 30)
        await node.brain.queue.close()
        await node.store.close()
        await node.nc.close()


async def kinds(store: JetStreamEventStore, aggregate: str, agg_id: str) -> list[str]:
    return [e.envelope.type for e in (await store.load(aggregate, agg_id)).events]


def api(node: Node, tmp: Path) -> httpx.AsyncClient:
    ctx = ApiContext(
        store=node.store, dispatcher=node.brain.dispatcher, queue=node.brain.queue,
        read_model=ReadModel(tmp / "unused.db"), brain=node.status,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ctx))
    return httpx.AsyncClient(transport=transport, base_url="http://brain")


async def test_a_fenced_brain_refuses_requests_while_its_work_drains(cluster: Cluster) -> None:
    blue = await cluster.start("blue", "active", brain_cls=StuckBrain)
    await until(lambda: blue.state == "active")
    async with api(blue, cluster.tmp) as client:
        assert (await client.post("/api/tasks", json={"mode": "x"})).status_code == 400
        usurper = Leadership(LeaderRecord(blue.nc), "green", "green")
        await usurper.take()  # a newer generation: blue is fenced
        await until(lambda: blue.state != "active", what="blue to stop serving")
        assert isinstance(blue.brain, StuckBrain)
        await asyncio.wait_for(blue.brain.finishing.wait(), 10)
        # Its work is still finishing: the state already refuses new requests.
        assert blue.state == "draining" and blue.task is not None and not blue.task.done()
        refused = await client.post("/api/tasks", json={"mode": "x"})
        assert refused.status_code == 503 and refused.json()["state"] == "draining"
        assert (await client.get("/ping")).status_code == 503
        assert (await client.get("/brain/state")).json()["state"] == "draining"
        blue.brain.release.set()
        await asyncio.wait_for(blue.task, 10)
        assert (await client.get("/brain/state")).json()["state"] == "shutdown"
    await usurper.close()
    events = (await blue.store.load("brain", "blue")).events
    assert [e.envelope.type for e in events] == ["BrainStarted", "BrainActivated", "BrainShutDown"]
    assert events[-1].envelope.data.reason == "fenced by a newer generation"


async def test_the_drain_cap_ends_a_shutdown_whose_work_does_not_finish(
    cluster: Cluster,
) -> None:
    settings = HandoffSettings(pending_timeout=30, drain_cap=0.3, ack_timeout=10)
    blue = await cluster.start("blue", "active", settings, brain_cls=StuckBrain)
    await until(lambda: blue.state == "active")
    blue.stop.set()  # SIGTERM, as `baker brain` sees it
    assert blue.task is not None
    await asyncio.wait_for(blue.task, 10)
    assert isinstance(blue.brain, StuckBrain)
    assert not blue.brain.done.is_set()  # the cap ended the wait, not the work
    assert blue.state == "shutdown"
    assert (await kinds(blue.store, "brain", "blue"))[-1] == "BrainShutDown"


async def test_the_drain_cap_lets_a_handoff_proceed_past_a_request_that_never_ends(
    cluster: Cluster,
) -> None:
    settings = HandoffSettings(pending_timeout=30, drain_cap=0.3, ack_timeout=10, ready_every=0.2)
    blue = await cluster.start("blue", "active", settings)
    await until(lambda: blue.state == "active")
    blue.status.inflight = 1  # a request that is never going to finish
    green = await cluster.start("green", "pending", settings)
    await until(lambda: green.state == "active", what="green to take over")
    assert blue.task is not None
    await asyncio.wait_for(blue.task, 10)
    assert blue.state == "shutdown" and blue.status.inflight == 1
    brain_events = (await blue.store.load("brain", "blue")).events
    handoff = brain_events[2].envelope.data.handoff_id
    assert await kinds(blue.store, "handoff", handoff) == [
        "HandoffRequested", "HandoffDrainStarted", "HandoffCompleted",
    ]  # fmt: skip
    activated = (await green.store.load("brain", "green")).events[-1].envelope.data
    assert not activated.fresh_start and activated.generation == 2


async def test_a_pending_brain_told_abort_keeps_asking_then_starts_fresh(
    cluster: Cluster, raw_nc: NATS
) -> None:
    seen: list[HandoffMessage] = []

    async def record(msg: Msg) -> None:
        seen.append(decode_handoff(msg.data))

    sub = await raw_nc.subscribe(HANDOFF_SUBJECT, cb=record)
    settings = HandoffSettings(pending_timeout=3, drain_cap=1, ack_timeout=1, ready_every=0.2)
    green = await cluster.start("green", "pending", settings)
    await until(lambda: any(m.type == "ready" for m in seen), what="green's first ready")
    abort = HandoffMessage(
        type="abort", from_instance="blue", to_instance="green", handoff_id="handoff-x",
        reason="drain failed",
    )  # fmt: skip
    await raw_nc.publish(HANDOFF_SUBJECT, abort.encode())
    await until(lambda: green.controller.aborts == 1, what="green to get the abort")
    assert green.state == "pending"  # it does not take over from a Brain that just resumed
    after = len(seen)
    await until(lambda: any(m.type == "ready" for m in seen[after:]), what="another ready")
    assert green.state == "pending"
    await until(lambda: green.state == "active", what="the pending timeout")
    await sub.unsubscribe()
    events = (await green.store.load("brain", "green")).events
    assert [e.envelope.type for e in events] == ["BrainStarted", "BrainActivated"]
    assert events[-1].envelope.data.fresh_start is True


async def test_a_pending_brain_that_hears_nothing_starts_fresh_and_aborts_stale_handoffs(
    cluster: Cluster, provisioned: Client
) -> None:
    store = JetStreamEventStore(provisioned)
    request = c.RequestHandoff(to_instance="gone", to_version="1", generation=7)
    await CommandExecutor(store).execute("handoff", "handoff-stale", request)  # left half-way
    cluster.stale.append("handoff-stale")
    settings = HandoffSettings(pending_timeout=0.5, drain_cap=1, ack_timeout=1, ready_every=0.2)
    green = await cluster.start("green", "pending", settings)
    await until(lambda: green.state == "active", what="the pending timeout")
    activated = (await green.store.load("brain", "green")).events[-1]
    assert activated.envelope.type == "BrainActivated"
    assert activated.envelope.data.fresh_start is True and activated.envelope.data.generation == 1
    await until(lambda: green.controller.leadership.leading)
    history = (await green.store.load("handoff", "handoff-stale")).events
    assert [e.envelope.type for e in history] == ["HandoffRequested", "HandoffAborted"]
    assert history[-1].envelope.data.reason == "green started fresh"
    await store.close()


class DiesAfterTakingOver(Controller):
    """A new Brain that takes the generation on `clear` and dies before it can say `ack`."""

    async def _activate(self, *, fresh: bool) -> None:
        await self.leadership.take()
        raise asyncio.CancelledError  # gone, as after a SIGKILL: no ack, no events


async def test_a_new_brain_that_dies_after_taking_over_leaves_the_old_one_leading(
    cluster: Cluster,
) -> None:
    settings = HandoffSettings(pending_timeout=30, drain_cap=30, ack_timeout=1, ready_every=0.2)
    old = await cluster.start("blue", "active", settings)
    await until(lambda: old.state == "active", what="blue active")
    first = old.controller.leadership.mine
    new = await cluster.start("green", "pending", settings, controller_cls=DiesAfterTakingOver)
    assert new.task is not None
    with contextlib.suppress(asyncio.CancelledError):
        await new.task  # it took the generation and died
    await until(lambda: old.state == "active" and old.controller.leadership.mine != first,
                what="blue leading again")  # fmt: skip
    taken = old.controller.leadership.mine
    assert first is not None and taken is not None and taken >= first + 2  # above green's
    brain_events = await kinds(old.store, "brain", "blue")
    assert brain_events[-2:] == ["BrainDrainStarted", "BrainResumed"]
    handoffs = [e async for e in old.store.read_all(1) if e.envelope.aggregate == "handoff"]
    assert handoffs[-1].envelope.type == "HandoffAborted"
    assert "never answered" in handoffs[-1].envelope.data.reason
    # Blue may change jobs again: the fence lets it through under its new generation.
    job = await old.brain.dispatcher.dispatch(_spec())
    [dispatched] = (await old.store.load("job", job.job_id)).events
    assert dispatched.envelope.generation == taken
    resumed = (await old.store.load("brain", "blue")).events[-1]
    assert resumed.envelope.type == "BrainResumed" and resumed.envelope.generation == taken


def _spec() -> Any:
    from domain.specs import parse_job_spec  # noqa: PLC0415

    return parse_job_spec({"type": "command", "payload": {"command": "echo after"}})
