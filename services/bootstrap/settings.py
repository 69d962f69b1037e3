"""Each service's settings, from the environment's `Settings`."""

from __future__ import annotations

import logging
import os
import pwd

from adapters.executors.sandbox import cannot_confine, mechanism
from domain.command_sandbox import DEFAULT_RUN_AS, CommandSandbox
from services.brain.brain import BrainSettings
from services.brain.controller import HandoffSettings
from services.config import ConfigError, Settings
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
            sandbox=command_sandbox(settings),
        ),
        concurrency=concurrency or settings.worker_concurrency,
        ack_wait=settings.ack_wait,
        grace=settings.worker_grace,
        heartbeat_every=settings.heartbeat_every,
    )


log = logging.getLogger(__name__)


def checked_command_sandbox(settings: Settings) -> None:
    """`command_sandbox`, checked as a worker starts (before anything else) and logged."""
    log.info("command children run %s", mechanism(command_sandbox(settings)))


def command_sandbox(settings: Settings, euid: int | None = None) -> CommandSandbox:
    """How this worker confines command children: as BAKER_COMMAND_RUN_AS (default
    `nobody`) when it runs as root, as itself otherwise; `ConfigError` when it cannot."""
    if (os.geteuid() if euid is None else euid) != 0:
        return CommandSandbox(limits=settings.command_limits)
    user = settings.command_run_as
    if user is None:
        try:
            entry = pwd.getpwnam(DEFAULT_RUN_AS)
        except KeyError:
            raise ConfigError(
                f"BAKER_COMMAND_RUN_AS: unset, and there is no user {DEFAULT_RUN_AS!r} here to "
                "run commands as: name an unprivileged user"
            ) from None
        user = (entry.pw_uid, entry.pw_gid)
    sandbox = CommandSandbox(user=user, limits=settings.command_limits)
    if problem := cannot_confine(sandbox):
        raise ConfigError(f"BAKER_COMMAND_RUN_AS: {problem}")
    return sandbox


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
