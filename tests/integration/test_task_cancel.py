"""Cancelling a task across processes: `baker brain` (API, task service) and `baker launcher`
(local launcher, runner subprocesses) on a real nats-server; and the launcher's heartbeat."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from services.heartbeat import HEALTH_SUBJECT
from services.tasks.launcher import _descendants
from tests.e2e.procs import BakerProcess
from tests.integration.test_tasks import gone, types, wait_task
from tests.polling import until


@dataclass
class Procs:
    launcher: BakerProcess
    launcher_id: str
    brain: BakerProcess
    url: str


def env(server: NatsServerProcess, **extra: str) -> dict[str, str]:
    return {
        "BAKER_NATS_URL": server.url, "BAKER_ALLOWED_COMMANDS": "echo,sleep",
        "BAKER_HEARTBEAT_SECONDS": "0.5", "BAKER_LOG_LEVEL": "WARNING", "BAKER_API_PORT": "0",
        "BAKER_API_TOKEN": "", **extra,
    }  # fmt: skip


def start_launcher(server: NatsServerProcess) -> tuple[BakerProcess, str]:
    proc = BakerProcess("launcher", env=env(server))
    line = proc.wait_for("running")
    match = re.search(r"baker launcher (\S+) \(local\): running", line)
    assert match, line
    return proc, match.group(1)


@pytest.fixture
def procs(nats_server: NatsServerProcess, provisioned: Client, tmp_path: Path) -> Iterator[Procs]:
    launcher, launcher_id = start_launcher(nats_server)
    brain = BakerProcess("brain", env=env(nats_server, BAKER_DB=str(tmp_path / "readmodel.db")))
    port = re.search(r"API on port (\d+)", brain.wait_for("API on port"))
    assert port
    try:
        yield Procs(launcher, launcher_id, brain, f"http://127.0.0.1:{port.group(1)}")
    finally:
        for proc in (brain, launcher):
            if proc.proc.poll() is None:
                assert proc.stop(signal.SIGTERM) == 0


@pytest.fixture
async def store(provisioned: Client) -> Any:
    s = JetStreamEventStore(provisioned)
    yield s
    await s.close()


async def active(client: httpx.AsyncClient) -> bool:
    return (await client.get("/ping")).status_code == 200


async def test_cancelling_a_running_task_kills_its_runner_and_records_it(
    procs: Procs, store: JetStreamEventStore
) -> None:
    async with httpx.AsyncClient(base_url=procs.url, timeout=10) as c:
        await until(lambda: active(c), "the Brain to be active")
        launched = await c.post(
            "/api/tasks", json={"goal": "sleep 30", "mode": "script", "timeoutSeconds": 60}
        )
        assert launched.status_code == 202, launched.text
        task_id = launched.json()["id"]
        history = await wait_task(store, task_id, {"running"})
        runner = int(history.events[1].envelope.data.runner_id.rsplit("-", 1)[1])
        children = await until(lambda: _descendants(runner), "the runner's `sleep`")
        assert not gone(runner)

        answer = await c.post(f"/api/tasks/{task_id}/cancel", json={"reason": "operator: stop"})
        assert answer.status_code == 202, answer.text
        doc = answer.json()
        assert (doc["id"], doc["status"]) == (task_id, "cancelled")
        assert doc["runner"]["stopped"] is True and doc["runner"]["launcher"] == "local"
        # The launcher in the other process killed the runner and everything it started.
        await until(lambda: gone(runner) and all(gone(p) for p in children), "the tree gone")
        history = await store.load("task", task_id)
        assert types(history) == ["TaskLaunched", "TaskStarted", "TaskCancelled"]
        assert history.events[-1].envelope.data.reason == "operator: stop"

        again = await c.post(f"/api/tasks/{task_id}/cancel")
        assert again.status_code == 409 and "already cancelled" in again.json()["error"]

        async def folded() -> bool:
            row = (await c.get(f"/api/tasks/{task_id}")).json()
            return row.get("status") == "cancelled" and row.get("error") == "operator: stop"

        await until(folded, "the read model to show it cancelled")
        missing = await c.post("/api/tasks/task-0000000000000000/cancel")
        assert missing.status_code == 404 and "no task" in missing.json()["error"]


async def test_cancelling_a_finished_task_is_refused_and_audited(
    procs: Procs, store: JetStreamEventStore
) -> None:
    async with httpx.AsyncClient(base_url=procs.url, timeout=10) as c:
        await until(lambda: active(c), "the Brain to be active")
        launched = await c.post("/api/tasks", json={"goal": "echo done", "mode": "script"})
        assert launched.status_code == 202, launched.text
        task_id = launched.json()["id"]
        await wait_task(store, task_id, {"completed"})
        answer = await c.post(f"/api/tasks/{task_id}/cancel")
        assert answer.status_code == 409 and answer.json()["status"] == "completed"
    history = await store.load("task", task_id)
    assert types(history)[-2:] == ["TaskCompleted", "TransitionRejected"]
    assert history.state.status == "completed"


async def test_baker_launcher_sends_health_heartbeats(
    nats_server: NatsServerProcess, provisioned: Client, raw_nc: NATS
) -> None:
    beats: list[dict[str, Any]] = []

    async def on_beat(msg: Msg) -> None:
        doc = json.loads(msg.data)
        if doc["service"] == "launcher":
            beats.append(doc)

    sub = await raw_nc.subscribe(HEALTH_SUBJECT, cb=on_beat)
    launcher, instance = start_launcher(nats_server)
    try:
        await until(lambda: len(beats) >= 2, "two heartbeats of baker launcher")
        first = beats[0]
        assert set(first) >= {"service", "instance", "status", "version", "uptime", "timestamp"}
        assert (first["instance"], first["status"]) == (instance, "up")
        assert first["details"]["launcher"] == "local" and first["details"]["launched"] == 0
        assert launcher.stop(signal.SIGTERM) == 0
        await until(lambda: beats[-1]["status"] == "stopping", "a last heartbeat")
    finally:
        if launcher.proc.poll() is None:
            launcher.stop(signal.SIGKILL)
        await sub.unsubscribe()
