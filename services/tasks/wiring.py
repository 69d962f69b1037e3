"""Choosing and building the task launcher from the environment."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.client import Client as NATS

from adapters.kubernetes import in_cluster
from services.config import Settings
from services.tasks.launcher import KubernetesLauncher, LocalLauncher, LocalSettings

log = logging.getLogger("baker.tasks")


def build_launcher(nc: NATS, settings: Settings, nats_url: str) -> Any | None:
    """The configured launcher (`BAKER_TASK_LAUNCHER`: local, kubernetes, off), or None."""
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
            nc, api_url=api, token=token, namespace=settings.k8s_namespace,
            image=settings.task_image, nats_url=runner_url, verify=ca or True,
        )  # fmt: skip
    return LocalLauncher(
        nc,
        nats_url=runner_url,
        settings=LocalSettings(
            grace=settings.task_grace,
            allowed_commands=",".join(settings.allowed_commands),
            anthropic_api_key=settings.anthropic_api_key,
            anthropic_base_url=settings.anthropic_base_url,
            default_model=settings.default_model,
        ),
    )


async def run_launcher(launcher: Any, stop: asyncio.Event) -> None:
    log.info("task launcher %s ready", launcher.name)
    await launcher.run(stop)
