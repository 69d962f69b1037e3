"""A Brain process: Brain + projector + event bus + HTTP API + role controller, and in
`baker up` the monitor, the task launcher and workers too, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import uvicorn

from adapters.executors.command import prefer_pidfd_watcher
from adapters.http_server import CoalescedHttp
from adapters.nats.bus import NatsBus
from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.idempotency import JetStreamIdempotencyKeys
from adapters.nats.leader import LeaderRecord
from adapters.nats.output import NatsOutput
from adapters.readmodel import Reader
from domain.handoff import HANDOFF_SUBJECT
from services.api.app import create_app
from services.api.bus import EventBus
from services.api.context import ApiContext, BrainStatus
from services.api.liveness import LastSeen
from services.bootstrap.launcher import build_launcher, run_launcher
from services.bootstrap.parts import build_brain, build_standby_projector, build_worker
from services.bootstrap.readmodel import read_model_location, read_model_store
from services.bootstrap.runtime import Runtime, heartbeat_for
from services.bootstrap.settings import (
    brain_settings,
    handoff_settings,
    monitor_settings,
    worker_settings,
)
from services.brain.brain import Brain, new_brain_id
from services.brain.controller import Controller
from services.brain.idempotency import IdempotentDispatch
from services.brain.leadership import Leadership
from services.config import Settings
from services.executor import CommandExecutor
from services.monitor.monitor import Monitor
from services.projector import ProjectorFailed, ProjectorSettings
from services.projector_standby import StandbyProjector
from services.signals import wait_stopped
from services.topic import BusTopic
from services.worker.worker import Worker

log = logging.getLogger("baker.system")


@dataclass
class BrainProcess:
    """Everything a Brain process runs, started and stopped together."""

    rt: Runtime
    brain: Brain
    projector: StandbyProjector
    bus: EventBus
    api: uvicorn.Server
    read_model: Reader | None = None
    controller: Controller | None = None
    workers: list[tuple[Worker, Client]] = field(default_factory=list)
    connections: list[Client] = field(default_factory=list)  # the monitor's, the launcher's
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.api.servers[0].sockets[0].getsockname()[1])


async def start_brain_process(
    rt: Runtime,
    settings: Settings,
    stop: asyncio.Event,
    url: str,
    *,
    workers: int = 0,
    role: Literal["active", "pending"] = "active",
    monitor: bool = False,
    role_url: Callable[[str], str] | None = None,
) -> BrainProcess:
    """Open the read model, start the Brain, the projector, the live bus, the API and workers.
    With `monitor` (`baker up`) the monitor and the task launcher run here too. `role_url`:
    the URL each part connects with (DESIGN §12: the embedded server's user of its role);
    by default `url` for all."""
    as_role = role_url or (lambda _role: url)
    if settings.api_token is None:
        log.warning("BAKER_API_TOKEN is not set: the API accepts requests without a token")
    instance = new_brain_id()
    read_model, projector = _own_projector(rt, settings, instance)
    await projector.open()
    leadership = Leadership(LeaderRecord(rt.nc), instance, settings.brain_version)
    # Only the leader changes jobs and tasks; every event carries the generation it took.
    executor = CommandExecutor(rt.store, fence=leadership)
    brain = build_brain(rt.nc, executor, brain_settings(settings), instance=instance)
    bus = EventBus(rt.store)
    status = BrainStatus(
        instance=instance, version=settings.brain_version, state="pending", mode=role
    )
    ctx = ApiContext(
        store=rt.store, dispatcher=brain.dispatcher, queue=brain.queue,
        read_model=read_model, token=settings.api_token,
        cors_origins=settings.cors_origins, brain=status,
        wait_for=projector.wait_for,
        counters=lambda: {"malformed": malformed()},
        bus=bus,
        output=NatsOutput(rt.nc),
        keepalive=settings.sse_keepalive,
        launch_task=brain.tasks.launch,
        cancel_task=brain.tasks.cancel,
        nats_check=rt.nc.health,
        scheduler=brain.scheduler,
        idempotent=IdempotentDispatch(
            brain.dispatcher, JetStreamIdempotencyKeys(rt.nc, settings.idempotency_ttl)
        ),
    )  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(
        create_app(ctx), host=settings.api_host, port=settings.api_port, log_level="warning",
        access_log=False, lifespan="off", http=CoalescedHttp, timeout_graceful_shutdown=5,
    ))  # fmt: skip
    connections: list[Client] = []
    if monitor:  # `baker up`: the monitor runs here, on its own connection, and knows every
        # heartbeat; it records only its own aggregates (unfenced, as `baker monitor`)
        the_monitor = await _monitor(settings, as_role("monitor"), connections)
        ctx.health = _async(the_monitor.snapshot)
    else:
        last_seen = LastSeen()
        await last_seen.start(NatsBus(rt.nc))
        ctx.health = last_seen.snapshot
    controller = Controller(
        BusTopic(NatsBus(rt.nc), HANDOFF_SUBJECT), executor, brain, status, leadership,
        handoff_settings(settings), stale_handoffs=lambda: _open_handoffs(ctx.read_model),
    )  # fmt: skip

    def malformed() -> dict[str, int]:
        """Malformed messages by the path that refused them (for /metrics)."""
        counts = {
            "ingest": brain.ingest.stats.malformed,
            "tasks": brain.tasks.stats.malformed,
            "handoff": controller.malformed,
        }
        if monitor:
            stats = the_monitor.stats
            counts.update(extensions=stats["extension_malformed"], health=stats["health_malformed"])
        else:
            counts["health"] = last_seen.malformed
        return counts

    async def play_role() -> None:
        await controller.run(role, stop)
        stop.set()  # handed over or fenced: this process is done

    def details() -> dict[str, Any]:
        return {"state": status.state, "generation": leadership.mine, **brain.details()}

    beat = heartbeat_for(NatsBus(rt.nc), "brain", settings.heartbeat_every)
    proc = BrainProcess(rt, brain, projector, bus, server, read_model=ctx.read_model)
    proc.controller = controller
    proc.connections = connections
    if monitor:
        proc.tasks.append(asyncio.create_task(the_monitor.run(stop), name="monitor"))
        await _start_launcher(proc, settings, stop, as_role)  # `baker up` launches tasks
    proc.tasks += [
        asyncio.create_task(run_own_projector(projector, stop), name="projector"),
        asyncio.create_task(play_role(), name="brain"),
        asyncio.create_task(_awaited(beat(instance, details, stop)), name="brain-heartbeat"),
        asyncio.create_task(bus.run(stop), name="bus"),
        asyncio.create_task(server.serve(), name="api"),
    ]
    await _start_workers(proc, settings, stop, as_role("worker"), workers)
    while not server.started:
        if any(t.done() for t in proc.tasks):
            await _raise_first(proc.tasks)
        await asyncio.sleep(0.01)  # uvicorn offers no event for "listening"
    return proc


async def _monitor(settings: Settings, url: str, connections: list[Client]) -> Monitor:
    conn = await Client.connect(settings.nats(url, "baker-monitor"))
    connections.append(conn)
    return Monitor(
        NatsBus(conn), CommandExecutor(JetStreamEventStore(conn)), monitor_settings(settings)
    )


async def _start_launcher(
    proc: BrainProcess, settings: Settings, stop: asyncio.Event, as_role: Callable[[str], str]
) -> None:
    """The task launcher on a connection of its own; the runners it starts connect as task
    runners (not with the launcher's credentials)."""
    conn = await Client.connect(settings.nats(as_role("launcher"), "baker-launcher"))
    proc.connections.append(conn)
    launcher = build_launcher(conn, settings, as_role("task-runner"))
    if launcher is not None:
        proc.tasks.append(asyncio.create_task(run_launcher(launcher, stop), name="launcher"))


async def _start_workers(
    proc: BrainProcess, settings: Settings, stop: asyncio.Event, url: str, workers: int
) -> None:
    """`baker up`'s workers, each on a connection of its own (as `baker worker` would be)."""
    if workers:
        prefer_pidfd_watcher()  # command jobs run in this process
    for _ in range(workers):
        conn = await Client.connect(settings.nats(url, "baker-worker"))
        worker = build_worker(conn, worker_settings(settings))
        proc.workers.append((worker, conn))
        proc.tasks.append(asyncio.create_task(worker.run(stop), name=worker.id))


async def _awaited(work: Awaitable[None]) -> None:
    await work


class OwnProjector(Protocol):
    """The Brain's projector: a `Projector`, or the `StandbyProjector` around one."""

    @property
    def instance(self) -> str: ...

    @property
    def applied(self) -> int: ...

    async def run(self, stop: asyncio.Event) -> None: ...


async def run_own_projector(projector: OwnProjector, stop: asyncio.Event) -> None:
    """The Brain's own projector. If it fails (a sequence gap, the store or the database), the
    whole process stops: a Brain whose read model no longer moves would answer stale reads and
    make every read-your-writes wait time out."""
    try:
        await projector.run(stop)
    except Exception as exc:
        log.critical(
            "the Brain's projector failed, stopping the Brain: %s", exc,
            extra={"instance": projector.instance, "seq": projector.applied},
        )  # fmt: skip
        stop.set()
        raise ProjectorFailed(f"the Brain's projector failed: {exc}") from exc


def _async(fn: Callable[[], dict[str, Any]]) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def call() -> dict[str, Any]:
        return fn()

    return call


def _own_projector(
    rt: Runtime, settings: Settings, instance: str
) -> tuple[Reader, StandbyProjector]:
    """The API's reader and the Brain's projector. The projector is one candidate for the read
    model's lease: it applies while it holds it; while a `baker projector` does, its
    read-your-writes follow the checkpoint the reader sees."""
    model_store = read_model_store(settings)
    read_model = model_store.reader()
    projector = build_standby_projector(
        rt.nc,
        rt.store,
        model_store,
        ProjectorSettings(heartbeat_every=settings.heartbeat_every),
        location=read_model_location(settings, socket.gethostname()),
        checkpoint=read_model.applied,
        instance=f"{instance}-projector",
    )
    return read_model, projector


async def _open_handoffs(read_model: Reader) -> list[str]:
    """Handoffs left half-way by a Brain that vanished (a fresh start aborts them)."""
    db = await read_model.db()
    async with db.execute(
        "SELECT id FROM handoffs WHERE status IN ('requested', 'draining')"
    ) as cur:
        return [row[0] async for row in cur]


async def _raise_first(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        if task.done() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def stop_brain_process(proc: BrainProcess) -> None:
    """After `stop` is set: stop serving HTTP, let workers finish, wait for every loop."""
    proc.api.should_exit = True
    await wait_stopped(proc.tasks, log)
    await proc.brain.queue.close()
    for conn in [*(conn for _, conn in proc.workers), *proc.connections]:
        with contextlib.suppress(Exception):
            await conn.close()
    await proc.projector.close()
    if proc.read_model is not None:
        await proc.read_model.close()  # its thread would keep the process alive
    for task in proc.tasks:  # a failed projector is raised once everything else has stopped
        if task.get_name() == "projector" and not task.cancelled():
            failure = task.exception()
            if isinstance(failure, ProjectorFailed):
                raise failure
