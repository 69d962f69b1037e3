"""The daemons' entry points, as the CLI calls them: `baker brain`, `worker`, `monitor`,
`launcher` (DESIGN §7); `baker up` is `services.up` on `start_brain_process`."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from adapters.executors.command import prefer_pidfd_watcher
from adapters.nats.bus import NatsBus
from services.bootstrap.api_process import start_api_process, stop_api_process
from services.bootstrap.brain_process import start_brain_process, stop_brain_process
from services.bootstrap.launcher import build_launcher, run_launcher
from services.bootstrap.parts import build_worker
from services.bootstrap.runtime import runtime
from services.bootstrap.settings import monitor_settings, worker_settings
from services.config import Settings
from services.executor import CommandExecutor
from services.monitor.monitor import Monitor
from services.projector import ProjectorFailed
from services.signals import stop_on_signals
from services.tuning import tune_gc

log = logging.getLogger("baker")


async def run_monitor(settings: Settings) -> int:
    """The extensions registry and the service health monitor."""
    tune_gc()
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with runtime(settings, settings.nats_url_for("monitor"), "baker-monitor") as rt:
        monitor = Monitor(NatsBus(rt.nc), CommandExecutor(rt.store), monitor_settings(settings))
        print(f"baker monitor {monitor.instance}: running", flush=True)
        await monitor.run(stop)
    return 0


async def run_task_launcher(settings: Settings) -> int:
    """The configured task launcher on its own (`baker launcher`)."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with runtime(settings, settings.nats_url_for("launcher"), "baker-launcher") as rt:
        # Runners connect as task runners, not with the launcher's credentials.
        launcher = build_launcher(rt.nc, settings, settings.nats_url_for("task-runner"))
        if launcher is None:
            print("baker launcher: BAKER_TASK_LAUNCHER=off, nothing to do", flush=True)
            return 0

        def ready(instance: str) -> None:
            print(f"baker launcher {instance} ({launcher.name}): running", flush=True)

        await run_launcher(launcher, stop, on_ready=ready)  # with its health heartbeat
    return 0


async def run_worker(settings: Settings, concurrency: int | None = None) -> int:
    tune_gc()
    prefer_pidfd_watcher()
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with runtime(settings, settings.nats_url_for("worker"), "baker-worker") as rt:
        worker = build_worker(rt.nc, worker_settings(settings, concurrency))
        print(f"baker worker {worker.id}: running; SIGTERM stops it gracefully", flush=True)
        await worker.run(stop)
    return 0


async def run_brain(settings: Settings, role: Literal["active", "pending"] = "active") -> int:
    """The Brain with its API, its own read model (projector) and live bus."""
    tune_gc()
    stop = asyncio.Event()
    stop_on_signals(stop)
    url = settings.nats_url_for("brain")
    async with runtime(settings, url, "baker-brain") as rt:
        proc = await start_brain_process(rt, settings, stop, url, role=role)
        print(f"baker brain {proc.brain.instance} ({role}): API on port {proc.port}", flush=True)
        await stop.wait()
        try:
            await stop_brain_process(proc)
        except ProjectorFailed as exc:
            log.error("%s", exc)
            return 3
    return 0


async def run_api(settings: Settings, port: int | None = None) -> int:
    """The read side of the HTTP API alone (`baker api`), over the shared read model."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with runtime(settings, settings.nats_url_for("api"), "baker-api") as rt:
        proc = await start_api_process(rt, settings, stop, port)
        brain = settings.brain_url or "BAKER_BRAIN_URL not set"
        print(
            f"baker api {proc.instance}: read-only API on port {proc.port} (writes go to the "
            f"Brain: {brain})", flush=True,
        )  # fmt: skip
        await stop.wait()
        await stop_api_process(proc)
    return 0
