"""`POST /api/tasks` through the real app: its body is a documented pydantic model, and a bad
body is a 400 naming the field before anything is launched or recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.sqlite import ReadModel
from services.api.app import create_app
from services.api.context import ApiContext
from services.bootstrap.parts import build_brain
from services.executor import CommandExecutor


@pytest.fixture
async def client(
    provisioned: Client, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, JetStreamEventStore]]:
    store = JetStreamEventStore(provisioned)
    brain = build_brain(provisioned, CommandExecutor(store), instance="brain-api")
    brain.tasks.launch_timeout = 0.5
    read_model = ReadModel(tmp_path / "readmodel.db")
    ctx = ApiContext(
        store=store, dispatcher=brain.dispatcher, queue=brain.queue,
        read_model=read_model, launch_task=brain.tasks.launch,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://brain") as c:
        yield c, store
    await read_model.close()
    await brain.queue.close()
    await store.close()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "script"}, "goal"),
        ({"goal": "   ", "mode": "script"}, "goal"),
        ({"goal": "x" * 10_001, "mode": "script"}, "goal"),
        ({"goal": "x"}, "mode"),
        ({"goal": "x", "mode": "shell"}, "mode"),
        ({"goal": "x", "mode": "script", "timeoutSeconds": 1801}, "timeoutSeconds"),
        ({"goal": "x", "mode": "script", "timeoutSeconds": 0}, "timeoutSeconds"),
        ({"goal": "x", "mode": "script", "timeoutSeconds": True}, "timeoutSeconds"),
        ({"goal": "x", "mode": "script", "timeoutSeconds": "60"}, "timeoutSeconds"),
        ({"goal": "x", "mode": "agent", "toolbox": "a b"}, "toolbox"),
        (["goal", "x"], "body"),
    ],
)
async def test_a_bad_task_body_is_400_naming_the_field(
    client: tuple[httpx.AsyncClient, JetStreamEventStore], body: Any, field: str
) -> None:
    c, store = client
    answer = await c.post("/api/tasks", json=body)
    assert answer.status_code == 400, answer.text
    doc = answer.json()
    assert doc["field"] == field and doc["error"].startswith(f"{field}: "), doc
    assert await store.head_seq() == 0  # nothing launched, nothing recorded


async def test_a_good_body_reaches_the_task_service(
    client: tuple[httpx.AsyncClient, JetStreamEventStore],
) -> None:
    c, store = client
    answer = await c.post("/api/tasks", json={"goal": "echo x", "mode": "script", "extra": 1})
    assert answer.status_code == 503 and "no task launcher" in answer.json()["error"]
    history = await store.load("task", answer.json()["id"])
    assert [e.envelope.type for e in history.events] == ["TaskLaunched", "TaskFailed"]
    assert history.events[0].envelope.data.timeout_seconds == 1800  # the default


async def test_the_openapi_document_describes_the_task_body_and_cancel(
    client: tuple[httpx.AsyncClient, JetStreamEventStore],
) -> None:
    c, _ = client
    doc = (await c.get("/openapi.json")).json()
    post = doc["paths"]["/api/tasks"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert post["requestBody"]["required"] is True
    assert set(schema["required"]) == {"goal", "mode"}
    props = schema["properties"]
    assert props["mode"]["enum"] == ["agent", "script"]
    assert props["timeoutSeconds"]["maximum"] == 1800 and props["timeoutSeconds"]["minimum"] == 1
    assert props["goal"]["minLength"] == 1 and "toolbox" in props
    cancel = doc["paths"]["/api/tasks/{task_id}/cancel"]["post"]
    assert "202" in cancel["responses"]
