"""Choosing, building and running the task launcher from the environment."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from adapters.kubernetes import in_cluster
from adapters.nats.bus import NatsBus
from adapters.nats.client import Client
from services.bootstrap.runtime import heartbeat_for
from services.config import Settings
from services.tasks.kubernetes import KubernetesLauncher
from services.tasks.launcher import LocalLauncher, LocalSettings

log = logging.getLogger("baker.tasks")


def build_launcher(nc: Client, settings: Settings, nats_url: str) -> Any | None:
    """The configured launcher (`BAKER_TASK_LAUNCHER`: local, kubernetes, off), or None."""
    launcher = _build(nc, settings, nats_url)
    if launcher is not None:
        launcher.heartbeat_every = settings.heartbeat_every
    return launcher


def _build(nc: Client, settings: Settings, nats_url: str) -> Any | None:
    bus = NatsBus(nc)
    kind = settings.task_launcher
    runner_url = settings.task_runner_nats_url or nats_url
    if kind == "off":
        return None
    if kind == "kubernetes":
        api, token, ca = settings.k8s_api, settings.k8s_token, None
        if api is None and (found := in_cluster()) is not None:
            api, token, ca = found
        if api is None:
            raise RuntimeError("BAKER_TASK_LAUNCHER=kubernetes needs BAKER_K8S_API (or a pod)")
        return KubernetesLauncher(
            bus, api_url=api, token=token, namespace=settings.k8s_namespace,
            image=settings.task_image, nats_url=runner_url, verify=ca or True,
        )  # fmt: skip
    return LocalLauncher(
        bus,
        nats_url=runner_url,
        settings=LocalSettings(
            grace=settings.task_grace,
            allowed_commands=",".join(settings.allowed_commands),
            anthropic_api_key=settings.anthropic_api_key,
            anthropic_base_url=settings.anthropic_base_url,
            default_model=settings.default_model,
            run_as=settings.task_run_as,
        ),
    )


async def run_launcher(
    launcher: Any,
    stop: asyncio.Event,
    instance: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the launcher until `stop`, with its health heartbeat (`service: launcher`) from the
    moment it listens; `on_ready(instance)` is called then."""
    instance = instance or f"launcher-{uuid.uuid4().hex[:8]}"
    work = asyncio.create_task(launcher.run(stop), name=f"baker-{instance}")
    ready = asyncio.create_task(launcher.ready.wait())
    await asyncio.wait({work, ready}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if work.done():  # it failed before listening (or was stopped at once)
        await work
        return
    log.info("task launcher %s (%s) ready", instance, launcher.name)
    if on_ready is not None:
        on_ready(instance)
    beat = heartbeat_for(launcher.bus, "launcher", launcher.heartbeat_every)
    beating = asyncio.ensure_future(beat(instance, launcher.details, stop))
    try:
        await work
    finally:
        if not stop.is_set():  # the launcher failed: its heartbeat must not say it is up
            beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
