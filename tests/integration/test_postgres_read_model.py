"""DESIGN §13 end to end: with `BAKER_DB` a postgresql:// URL the composition root projects
into PostgreSQL, and the API answers from it exactly as it does from SQLite. A real
nats-server, a Brain, a worker, two projectors of the same log (one per store), one API on
each store; jobs run; every read route compared."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from adapters.nats.server import NatsServerProcess
from adapters.postgres.store import PgStore
from adapters.readmodel import SqliteStore
from services.api.app import create_app
from services.api.context import ApiContext
from services.bootstrap.parts import build_projector
from services.bootstrap.readmodel import read_model_store
from services.config import Settings
from services.projector import Projector, ProjectorSettings
from tests.integration.pipeline import Pipeline, running_pipeline
from tests.support.postgres import postgres_url

__all__ = ["postgres_url"]
ROUTES = (
    "/api/jobs", "/api/jobs?status=completed", "/api/jobs?type=command&limit=2",
    "/api/jobs?label=team:infra", "/api/jobs?asOf=5", "/api/usage", "/api/extensions",
    "/api/system/handoff", "/api/tasks",
)  # fmt: skip


@asynccontextmanager
async def api_on(
    pipe: Pipeline, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, Projector]]:
    """A projector and an API on the read model `settings` names, as the Brain wires them."""
    projector = build_projector(
        pipe.nc, pipe.store, read_model_store(settings), ProjectorSettings(heartbeat_every=60)
    )
    await projector.open()
    stop = asyncio.Event()
    running = asyncio.create_task(projector.run(stop))
    reader = read_model_store(settings).reader()
    ctx = ApiContext(
        store=pipe.store, dispatcher=pipe.brain.dispatcher, queue=pipe.brain.queue,
        read_model=reader, wait_for=projector.wait_for,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ctx))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://brain") as client:
            yield client, projector
    finally:
        stop.set()
        await running
        await reader.close()


async def test_the_api_answers_from_postgresql_as_from_sqlite(
    nats_server: NatsServerProcess, postgres_url: str, tmp_path: Path
) -> None:
    on_pg = Settings.from_env({"BAKER_DATA_DIR": str(tmp_path), "BAKER_DB": postgres_url})
    on_sqlite = Settings.from_env({"BAKER_DATA_DIR": str(tmp_path)})
    assert isinstance(read_model_store(on_pg), PgStore)
    assert isinstance(read_model_store(on_sqlite), SqliteStore)
    async with running_pipeline(nats_server) as pipe, AsyncExitStack() as stack:
        await pipe.start_worker()
        pg, pg_projector = await stack.enter_async_context(api_on(pipe, on_pg))
        lite, lite_projector = await stack.enter_async_context(api_on(pipe, on_sqlite))
        ids = []
        for i in range(6):
            body: dict[str, Any] = {"type": "command", "payload": {"command": f"echo {i}"}}
            if i % 2:
                body["labels"] = {"team": "infra"}
            posted = await pg.post("/api/jobs", json=body)
            assert posted.status_code == 202, posted.text
            ids.append(posted.json()["id"])
        for job_id in ids:
            await pipe.wait_job(job_id, {"completed"})
        head = await pipe.store.head_seq()
        assert await pg_projector.wait_for(head, 30) and await lite_projector.wait_for(head, 30)
        listed = (await pg.get("/api/jobs")).json()
        assert sorted(j["id"] for j in listed["jobs"]) == sorted(ids)
        assert {j["status"] for j in listed["jobs"]} == {"completed"}
        for route in (*ROUTES, f"/api/jobs/{ids[0]}", f"/api/events?jobId={ids[1]}"):
            a, b = await pg.get(route), await lite.get(route)
            assert a.status_code == b.status_code == 200, (route, a.text, b.text)
            assert a.json() == b.json(), route
    pg_rm = PgStore(postgres_url)
    try:
        assert (await pg_rm.current()) == "baker_g1"
    finally:
        await pg_rm.close()
