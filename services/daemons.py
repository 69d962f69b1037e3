"""Running each daemon alone: `baker brain`, `baker worker` (DESIGN §7)."""

from __future__ import annotations

import asyncio

from services.bootstrap import runtime
from services.brain.brain import Brain, BrainSettings
from services.config import Settings
from services.signals import stop_on_signals
from services.tuning import tune_gc
from services.worker.executors import ExecutorSettings
from services.worker.worker import Worker, WorkerSettings


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


async def run_brain(settings: Settings) -> int:
    tune_gc()
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with runtime(settings, settings.nats_url_or_default, "baker-brain") as rt:
        brain = Brain(rt.nc, rt.store, brain_settings(settings))
        print(f"baker brain {brain.instance}: running", flush=True)
        await brain.run(stop)
    return 0
