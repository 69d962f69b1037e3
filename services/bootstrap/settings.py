"""Each service's settings, from the environment's `Settings`."""

from __future__ import annotations

from services.brain.brain import BrainSettings
from services.brain.controller import HandoffSettings
from services.config import Settings
from services.monitor.monitor import MonitorSettings
from services.worker.executors import ExecutorSettings
from services.worker.worker import WorkerSettings


def worker_settings(settings: Settings, concurrency: int | None = None) -> WorkerSettings:
    return WorkerSettings(
        executors=ExecutorSettings(
            allowed_commands=settings.allowed_commands,
            http_allowed_hosts=settings.http_allowed_hosts,
            anthropic_api_key=settings.anthropic_api_key,
            anthropic_base_url=settings.anthropic_base_url,
            default_model=settings.default_model,
            prices=settings.model_prices,
        ),
        concurrency=concurrency or settings.worker_concurrency,
        ack_wait=settings.ack_wait,
        grace=settings.worker_grace,
        heartbeat_every=settings.heartbeat_every,
    )


def brain_settings(settings: Settings) -> BrainSettings:
    return BrainSettings(
        stuck_after=settings.stuck_after,
        heartbeat_every=settings.heartbeat_every,
        prices=settings.model_prices,
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
