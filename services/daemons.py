"""Running each daemon alone: `baker brain`, `baker worker` (DESIGN §7)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from services.bootstrap import runtime
from services.brain.brain import BrainSettings
from services.brain.controller import HandoffSettings
from services.config import Settings
from services.monitor.monitor import MonitorSettings
from services.signals import stop_on_signals
from services.tuning import tune_gc
from services.worker.executors import ExecutorSettings
from services.worker.worker import Worker, WorkerSettings

log = logging.getLogger("baker")


def worker_settings(settings: Settings, concurrency: int | None = None) -> WorkerSettings:
    return WorkerSettings(
        executors=ExecutorSettings(
            allowed_commands=settings.allowed_commands,
            http_allowed_hosts=settings.http_allowed_hosts,
            anthropic_api_key=settings.anthropic_api_key,
            anthropic_base_url=settings.anthropic_base_url,
            default_model=settings.default_model,
        ),
        concurrency=concurrency or settings.worker_concurrency,
        ack_wait=settings.ack_wait,
        grace=settings.worker_grace,
        heartbeat_every=settings.heartbeat_every,
    )


def handoff_settings(settings: Settings) -> HandoffSettings:
    return HandoffSettings(
        pending_timeout=settings.handoff_pending_timeout,
        drain_cap=settings.handoff_drain_cap,
        ack_timeout=settings.handoff_ack_timeout,
    )


def monitor_settings(settings: Settings) -> MonitorSettings:
    return MonitorSettings(
        heartbeat_every=settings.heartbeat_every,
        missed=settings.missed_heartbeats,
        sweep_every=settings.monitor_sweep,
        discovery_retries=settings.mcp_retries,
        discovery_delay=settings.mcp_retry_delay,
    )


async def run_monitor(settings: Settings) -> int:
    """The extensions registry and the service health monitor."""
    from adapters.nats.bus import NatsBus  # noqa: PLC0415
    from services.monitor.monitor import Monitor  # noqa: PLC0415

    tune_gc()
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with runtime(settings, settings.nats_url_or_default, "baker-monitor") as rt:
        monitor = Monitor(NatsBus(rt.nc), rt.store, monitor_settings(settings))
        print(f"baker monitor {monitor.instance}: running", flush=True)
        await monitor.run(stop)
    return 0


async def run_task_launcher(settings: Settings) -> int:
    """The configured task launcher on its own (`baker launcher`)."""
    from services.tasks.wiring import build_launcher, run_launcher  # noqa: PLC0415

    stop = asyncio.Event()
    stop_on_signals(stop)
    url = settings.nats_url_or_default
    async with runtime(settings, url, "baker-launcher") as rt:
        launcher = build_launcher(rt.nc, settings, url)
        if launcher is None:
            print("baker launcher: BAKER_TASK_LAUNCHER=off, nothing to do", flush=True)
            return 0

        def ready(instance: str) -> None:
            print(f"baker launcher {instance} ({launcher.name}): running", flush=True)

        await run_launcher(launcher, stop, on_ready=ready)  # with its health heartbeat
    return 0


def brain_settings(settings: Settings) -> BrainSettings:
    return BrainSettings(stuck_after=settings.stuck_after, heartbeat_every=settings.heartbeat_every)


async def run_worker(settings: Settings, concurrency: int | None = None) -> int:
    tune_gc()
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with runtime(settings, settings.nats_url_or_default, "baker-worker") as rt:
        worker = Worker(rt.nc, worker_settings(settings, concurrency))
        print(f"baker worker {worker.id}: running; SIGTERM stops it gracefully", flush=True)
        await worker.run(stop)
    return 0


async def run_brain(settings: Settings, role: Literal["active", "pending"] = "active") -> int:
    """The Brain with its API, its own read model (projector) and live bus."""
    from services.composition import start_brain_process, stop_brain_process  # noqa: PLC0415
    from services.projector import ProjectorFailed  # noqa: PLC0415

    tune_gc()
    stop = asyncio.Event()
    stop_on_signals(stop)
    url = settings.nats_url_or_default
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
