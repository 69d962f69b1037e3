"""`baker api` (DESIGN §13): the read side of the HTTP API alone, as many as needed, each over
the shared read model (kept by `baker projector` or a Brain) and the event log.

The same app and routes as the Brain's (`services.api.app.create_app`), built here on an
`ApiContext` that only reads: every method but GET, HEAD and OPTIONS is refused with 405 naming
the Brain (`BAKER_BRAIN_URL`), and its command executor, which the routes read aggregates
through, is fenced against every append. It has no projector of its own: it never writes, so
no page waits for its own writes; the read model's lag shows in `/metrics` and the health
page. Schedules are the Brain's (kept in its memory): `/api/schedules` answers 503 here.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from adapters.http_server import CoalescedHttp
from adapters.nats.bus import NatsBus
from adapters.nats.job_queue import JetStreamJobQueue
from adapters.nats.output import NatsOutput
from adapters.readmodel import Reader
from services.api.app import create_app
from services.api.bus import EventBus
from services.api.context import ApiContext, BrainStatus
from services.api.liveness import LastSeen
from services.api.read_only import NoWrites
from services.bootstrap.readmodel import read_model_store
from services.bootstrap.runtime import Runtime, heartbeat_for
from services.brain.dispatcher import Dispatcher
from services.config import Settings
from services.executor import CommandExecutor
from services.signals import wait_stopped

log = logging.getLogger("baker.api")


@dataclass
class ApiProcess:
    """A read-only API and the loops it needs, started and stopped together."""

    instance: str
    server: uvicorn.Server
    read_model: Reader
    last_seen: LastSeen
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])


def read_only_context(rt: Runtime, settings: Settings, read_model: Reader) -> ApiContext:
    """What the routes need, for reading only."""
    queue = JetStreamJobQueue(rt.nc)  # its lanes' state (consumer info) for /metrics, /api/queue
    executor = CommandExecutor(rt.store, fence=NoWrites())
    return ApiContext(
        store=rt.store, dispatcher=Dispatcher(executor, queue), queue=queue,
        read_model=read_model, token=settings.api_token, cors_origins=settings.cors_origins,
        brain=BrainStatus(instance=f"api-{uuid.uuid4().hex[:8]}", mode="read-only",
                          version=settings.brain_version),
        bus=EventBus(rt.store), output=NatsOutput(rt.nc), keepalive=settings.sse_keepalive,
        nats_check=rt.nc.health, read_only=True, brain_url=settings.brain_url,
    )  # fmt: skip


async def start_api_process(
    rt: Runtime, settings: Settings, stop: asyncio.Event, port: int | None = None
) -> ApiProcess:
    """Serve the read-only API on `port` (default `BAKER_API_PORT`) until `stop`."""
    if settings.api_token is None:
        log.warning("BAKER_API_TOKEN is not set: the API accepts requests without a token")
    read_model = read_model_store(settings).reader()
    ctx = read_only_context(rt, settings, read_model)
    last_seen = LastSeen()
    await last_seen.start(NatsBus(rt.nc))
    ctx.health = last_seen.snapshot
    server = uvicorn.Server(uvicorn.Config(
        create_app(ctx), host=settings.api_host,
        port=settings.api_port if port is None else port, log_level="warning",
        access_log=False, lifespan="off", http=CoalescedHttp, timeout_graceful_shutdown=5,
    ))  # fmt: skip
    proc = ApiProcess(ctx.brain.instance, server, read_model, last_seen)
    beat = heartbeat_for(NatsBus(rt.nc), "api", settings.heartbeat_every)

    def details() -> dict[str, Any]:
        return {"mode": "read-only", "brainUrl": settings.brain_url}

    proc.tasks += [
        asyncio.create_task(ctx.bus.run(stop), name="bus"),
        asyncio.create_task(server.serve(), name="api"),
        asyncio.create_task(_awaited(beat(proc.instance, details, stop)), name="api-heartbeat"),
    ]
    while not server.started:
        for task in proc.tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        await asyncio.sleep(0.01)  # uvicorn offers no event for "listening"
    return proc


async def _awaited(work: Awaitable[None]) -> None:
    await work


async def stop_api_process(proc: ApiProcess) -> None:
    """After `stop` is set: stop serving, wait for the loops, close the read model."""
    proc.server.should_exit = True
    await wait_stopped(proc.tasks, log)
    await proc.last_seen.stop()
    await proc.read_model.close()
