"""The Kubernetes task launcher: one Job per task, with the digest's security posture (§4),
created through the Kubernetes API with httpx; cancelling a task deletes its Job and pods."""

from __future__ import annotations

import httpx

from adapters.clock import SYSTEM_CLOCK
from adapters.kubernetes import KubernetesError, create_job, delete_job
from domain.tasks import LaunchReply, LaunchRequest, job_manifest, job_name
from services.ports.bus import Bus
from services.ports.clock import Clock
from services.tasks.launcher import BaseLauncher


class KubernetesLauncher(BaseLauncher):
    """Creates one Job per task (`job_manifest`); a non-2xx answer refuses the launch."""

    name = "kubernetes"

    def __init__(
        self,
        bus: Bus,
        *,
        api_url: str,
        token: str | None,
        namespace: str,
        image: str,
        nats_url: str,
        ttl: int = 60,
        verify: bool | str = True,
        client: httpx.AsyncClient | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(bus, grace=30.0, clock=clock)
        self.api_url, self.token, self.namespace = api_url, token, namespace
        self.image, self.nats_url, self.ttl = image, nats_url, ttl
        self._client = client or httpx.AsyncClient(timeout=10.0, verify=verify)
        self._own_client = client is None

    async def start(self, request: LaunchRequest) -> LaunchReply:
        manifest = job_manifest(
            request.task_id, request.request(), self.image, self.namespace, self.nats_url, self.ttl
        )
        try:
            await create_job(self.api_url, self.token, self.namespace, manifest, self._client)
        except KubernetesError as exc:
            return self._refuse(exc.message)
        return LaunchReply(ok=True, launcher=self.name, runner_id=manifest["metadata"]["name"])

    async def stop(self, task_id: str) -> str | None:
        """Delete the task's Job and its pods; None when there is no such Job."""
        name = job_name(task_id)
        if not await delete_job(self.api_url, self.token, self.namespace, name, self._client):
            return None
        return f"job {name} deleted"

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()
