"""While a Brain is not active (pending, draining, shut down) every route of its API but
`/ping` and `/brain/state` answers 503; `/ping` says not ready and `/brain/state` the state."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.sqlite import ReadModel
from services.api.app import create_app
from services.api.context import ApiContext, BrainStatus
from services.bootstrap.parts import build_brain
from services.executor import CommandExecutor

ALWAYS = {"/ping", "/brain/state"}


@pytest.fixture
async def app(provisioned: Client, tmp_path: Path) -> AsyncIterator[tuple[FastAPI, BrainStatus]]:
    store = JetStreamEventStore(provisioned)
    brain = build_brain(provisioned, CommandExecutor(store), instance="brain-guard")
    status = BrainStatus(instance=brain.instance, state="active", mode="pending")
    read_model = ReadModel(tmp_path / "readmodel.db")

    async def launch(_body: dict[str, object]) -> tuple[int, dict[str, object]]:
        return 202, {"id": "task-x", "status": "launched"}

    ctx = ApiContext(
        store=store, dispatcher=brain.dispatcher, queue=brain.queue,
        read_model=read_model, brain=status, launch_task=launch,
    )  # fmt: skip
    yield create_app(ctx), status
    await read_model.close()
    await brain.queue.close()
    await store.close()


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) of every route the app serves."""
    found: list[tuple[str, str]] = []
    todo = list(app.routes)
    while todo:
        route = todo.pop(0)
        included = getattr(route, "original_router", None)  # FastAPI keeps routers included
        if included is not None:
            todo += included.routes
            continue
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or ()):
            if path is not None and method != "HEAD":
                found.append((method, re.sub(r"\{[^}]+\}", "x-1", path)))
    return found


@pytest.mark.parametrize("state", ["pending", "draining", "shutdown"])
async def test_every_route_but_ping_and_state_answers_503_while_not_active(
    app: tuple[FastAPI, BrainStatus], state: str
) -> None:
    api, status = app
    routes = every_route(api)
    paths = {path for _, path in routes}
    assert {"/api/jobs", "/api/tasks", "/api/tasks/x-1/cancel", "/api/system/handoff"} <= paths
    assert {"/metrics", "/", "/openapi.json"} <= paths and paths >= ALWAYS
    status.state = state
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://brain") as client:
        for method, path in routes:
            answer = await client.request(method, path, json={} if method == "POST" else None)
            if path == "/brain/state":
                assert answer.status_code == 200 and answer.json()["state"] == state
            elif path == "/ping":
                assert answer.status_code == 503 and answer.json()["status"] == "not_ready"
            else:
                assert answer.status_code == 503, (method, path, answer.text)
                assert answer.json()["state"] == state, (method, path)


async def test_an_active_brain_serves_the_same_routes(app: tuple[FastAPI, BrainStatus]) -> None:
    api, status = app
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://brain") as client:
        assert (await client.get("/ping")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200
        bad = await client.post("/api/tasks", json={"goal": "x"})
        assert bad.status_code == 400 and bad.json()["error"].startswith("mode: ")
        status.state = "draining"
        assert (await client.post("/api/tasks", json={"goal": "x"})).status_code == 503
