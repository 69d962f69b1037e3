"""The Kubernetes launcher against a fake Kubernetes API: the Job it creates, refusals, and the
Job deleted (with its pods) when the task is cancelled."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.kubernetes import KubernetesError, create_job
from adapters.nats.bus import NatsBus
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.deliveries import JetStreamDeliveries
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import TASKS_CONSUMER, TASKS_STREAM
from services.executor import CommandExecutor
from services.tasks.kubernetes import KubernetesLauncher
from services.tasks.service import TaskService
from tests.fakes.k8s_api import FakeKubernetes
from tests.integration.test_tasks import types, wait_task

IMAGE = "baker-street/task-runner:latest"
NAMESPACE = "baker-tasks"
POD_NATS_URL = "nats://nats.baker-street:4222"
FORBIDDEN = 'jobs.batch is forbidden: User "system:serviceaccount:baker:brain" cannot create'


class Setup:
    def __init__(self, api: FakeKubernetes, service: TaskService, store: JetStreamEventStore):
        self.api, self.service, self.store = api, service, store


@pytest.fixture
async def k8s(
    nats_server: NatsServerProcess, provisioned: Client, request: pytest.FixtureRequest
) -> AsyncIterator[Setup]:
    options: dict[str, Any] = getattr(request, "param", {})
    store = JetStreamEventStore(provisioned)
    conn = await Client.connect(Options(url=nats_server.url, name="test-k8s-launcher"))
    stop = asyncio.Event()
    with FakeKubernetes(token="t0k") as api:
        launcher = KubernetesLauncher(
            NatsBus(conn),
            api_url=options.get("api_url", api.url),
            token=options.get("token", "t0k"),
            namespace=NAMESPACE,
            image=IMAGE,
            nats_url=options.get("nats_url", POD_NATS_URL),
        )
        service = TaskService(
            NatsBus(provisioned),
            CommandExecutor(store),
            JetStreamDeliveries(provisioned, TASKS_STREAM, TASKS_CONSUMER),
            launch_timeout=15.0,
        )
        runs = [asyncio.create_task(launcher.run(stop)), asyncio.create_task(service.run(stop))]
        await asyncio.wait_for(launcher.ready.wait(), 5)
        try:
            yield Setup(api, service, store)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*runs), 30)
            await conn.close()
            await store.close()


async def test_the_job_has_the_security_posture(k8s: Setup) -> None:
    status, body = await k8s.service.launch(
        {"goal": "echo hi", "mode": "script", "timeoutSeconds": 600}
    )
    assert status == 202
    [posted] = k8s.api.jobs
    assert posted.namespace == NAMESPACE and posted.authorization == "Bearer t0k"
    job = posted.body
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"]["name"] == body["id"] and job["metadata"]["namespace"] == NAMESPACE
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 600 and spec["ttlSecondsAfterFinished"] == 60
    assert spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["image"] == IMAGE
    sec = container["securityContext"]
    assert sec["readOnlyRootFilesystem"] is True and sec["allowPrivilegeEscalation"] is False
    assert sec["capabilities"] == {"drop": ["ALL"]} and sec["runAsUser"] == 1000
    assert sec["runAsNonRoot"] is True and sec["seccompProfile"] == {"type": "RuntimeDefault"}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"NATS_URL": POD_NATS_URL, "TASK_ID": body["id"]}
    history = await k8s.store.load("task", body["id"])
    assert types(history) == ["TaskLaunched"]
    assert history.events[0].envelope.data.launcher == "kubernetes"


async def test_the_pod_gets_its_instructions_and_reports(
    k8s: Setup, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    """The runner started with the Job's environment (as the pod would be) finishes the task."""
    _, body = await k8s.service.launch({"goal": "echo from-the-pod", "mode": "script"})
    container = k8s.api.jobs[0].body["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    env |= {
        "NATS_URL": nats_server.url,
        "PATH": os.environ["PATH"],
        "BAKER_ALLOWED_COMMANDS": "echo",
    }
    pod = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.tasks.runner", env=env, cwd=tmp_path
    )
    assert await asyncio.wait_for(pod.wait(), 30) == 0
    history = await wait_task(k8s.store, body["id"], {"completed"})
    assert history.events[-1].envelope.data.result["stdout"] == "from-the-pod\n"


async def test_a_refusal_fails_the_task_with_the_apis_message(k8s: Setup) -> None:
    k8s.api.refuse(403, "Forbidden", FORBIDDEN)
    status, body = await k8s.service.launch({"goal": "echo hi", "mode": "script"})
    assert status == 503 and FORBIDDEN in body["error"] and "403" in body["error"]
    history = await wait_task(k8s.store, body["id"], {"failed"})
    assert types(history) == ["TaskLaunched", "TaskFailed"]
    assert history.events[0].envelope.data.launcher == "kubernetes"
    assert FORBIDDEN in history.events[1].envelope.data.error
    assert k8s.api.jobs == []


@pytest.mark.parametrize("k8s", [{"token": "wrong"}], indirect=True)
async def test_a_wrong_token_is_a_refusal(k8s: Setup) -> None:
    status, body = await k8s.service.launch({"goal": "echo hi", "mode": "script"})
    assert status == 503 and "401 Unauthorized" in body["error"]


@pytest.mark.parametrize("k8s", [{"api_url": "http://127.0.0.1:9"}], indirect=True)
async def test_an_unreachable_api_is_a_refusal(k8s: Setup) -> None:
    status, body = await k8s.service.launch({"goal": "echo hi", "mode": "script"})
    assert status == 503 and "unreachable" in body["error"]
    await wait_task(k8s.store, body["id"], {"failed"})


async def test_create_job_reports_status_errors_and_plain_bodies() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/jobs") and b"dup" in request.content:
            return httpx.Response(409, json={"kind": "Status", "message": "already exists"})
        return httpx.Response(500, text="upstream exploded")

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(KubernetesError) as dup:
            await create_job("http://k8s", None, "ns", {"metadata": {"name": "dup"}}, client)
        with pytest.raises(KubernetesError) as boom:
            await create_job("http://k8s", None, "ns", {"metadata": {"name": "x"}}, client)
    assert dup.value.status == 409 and dup.value.message.endswith(": already exists")
    assert boom.value.message == "Kubernetes API 500 Internal Server Error: upstream exploded"


async def test_cancel_deletes_the_job_and_its_pods(k8s: Setup) -> None:
    _, body = await k8s.service.launch({"goal": "sleep 600", "mode": "script"})
    name = k8s.api.jobs[0].body["metadata"]["name"]
    status, answer = await k8s.service.cancel(body["id"], "not needed any more")
    assert status == 202 and answer["status"] == "cancelled"
    assert answer["runner"] == {
        "stopped": True, "launcher": "kubernetes", "detail": f"job {name} deleted",
    }  # fmt: skip
    # Background propagation: the API deletes the Job's pods too (its default orphans them).
    assert k8s.api.deleted == [(NAMESPACE, name, "Background")] and k8s.api.jobs == []
    history = await k8s.store.load("task", body["id"])
    assert types(history) == ["TaskLaunched", "TaskCancelled"]
    assert history.events[-1].envelope.data.reason == "not needed any more"
    assert k8s.service.stats.cancelled == 1 and k8s.service.stats.watching == 0


async def test_a_refused_delete_is_reported_and_the_task_stays_cancelled(k8s: Setup) -> None:
    _, body = await k8s.service.launch({"goal": "sleep 600", "mode": "script"})
    k8s.api.refuse(403, "Forbidden", 'jobs.batch "x" is forbidden: cannot delete')
    status, answer = await k8s.service.cancel(body["id"])
    assert status == 202 and answer["runner"]["stopped"] is False
    assert (
        "403 Forbidden" in answer["runner"]["detail"]
        and "cannot delete" in answer["runner"]["detail"]
    )
    assert (await k8s.store.load("task", body["id"])).state.status == "cancelled"


async def test_cancelling_a_task_whose_job_is_gone_answers_without_a_launcher(
    k8s: Setup,
) -> None:
    _, body = await k8s.service.launch({"goal": "echo hi", "mode": "script"})
    k8s.api.jobs.clear()  # finished and collected (ttlSecondsAfterFinished)
    status, answer = await k8s.service.cancel(body["id"])
    assert status == 202 and answer["runner"]["stopped"] is False
    assert "no launcher runs it" in answer["runner"]["detail"]
    assert k8s.api.deleted == []
