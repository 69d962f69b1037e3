"""Read-your-writes without holding the POST: a job the read model does not hold yet is read
from the event log, and a page waits (bounded) for the events this API appended. The read model
here is a real SQLite file that no projector fills, so it lags for ever."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.eventstore.memory import InMemoryEventStore
from adapters.sqlite import ReadModel, connect_writer, ensure_schema, initialise
from domain.commands import DispatchJob, RecordStatus
from services.api.app import create_app
from services.api.context import ApiContext
from services.brain.dispatcher import Dispatched
from services.executor import CommandExecutor

JOB = {"type": "command", "payload": {"command": "echo hi"}}


class LoggingDispatcher:
    """Records the job in the event store, as the Brain's dispatcher does (no queue here)."""

    def __init__(self, store: CommandExecutor) -> None:
        self.store = store
        self.n = 0

    async def dispatch(self, spec: Any) -> Dispatched:
        self.n += 1
        job_id = f"job-{self.n:016x}"
        outcome = await self.store.execute("job", job_id, DispatchJob(spec=spec), new=True)
        return Dispatched(job_id, outcome.position.seq, None)


class Waits:
    """The projector's `wait_for`, for a projector that never gets there: counts the waits."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, float]] = []

    async def __call__(self, seq: int, timeout: float) -> bool:
        self.asked.append((seq, timeout))
        return False


@pytest.fixture
async def lagging(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Waits, Any]]:
    path = tmp_path / "readmodel.db"
    initialise(path)
    with contextlib.closing(connect_writer(path)) as db:
        ensure_schema(db)
    store = CommandExecutor(InMemoryEventStore())
    waits = Waits()
    read_model = ReadModel(path)
    ctx = ApiContext(
        store=store.store, dispatcher=LoggingDispatcher(store),  # type: ignore[arg-type]
        queue=None, read_model=read_model, wait_for=waits,  # type: ignore[arg-type]
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://brain") as client:
        yield client, waits, store
    await read_model.close()


async def test_a_job_just_dispatched_is_read_from_the_event_log(
    lagging: tuple[httpx.AsyncClient, Waits, Any],
) -> None:
    client, waits, store = lagging
    posted = await client.post("/api/jobs", json=JOB)
    assert posted.status_code == 202
    assert waits.asked == []  # the POST does not wait for the read model
    job_id = posted.json()["id"]
    await store.execute("job", job_id, RecordStatus(status="running", attempt=1, worker_id="w-1"))

    read = await client.get(f"/api/jobs/{job_id}")
    assert read.status_code == 200, read.text
    assert waits.asked == []  # read from the log at once, not after the projector's window
    doc = read.json()
    assert (doc["id"], doc["status"], doc["workerId"], doc["version"]) == (
        job_id, "running", "w-1", 2,
    )  # fmt: skip
    assert doc["payload"] == {"command": "echo hi"} and doc["lastSeq"] == 2
    assert (await client.get("/api/jobs/job-00000000000000ff")).status_code == 404


async def test_a_page_waits_for_what_this_api_dispatched(
    lagging: tuple[httpx.AsyncClient, Waits, Any],
) -> None:
    client, waits, _ = lagging
    assert (await client.get("/api/jobs")).status_code == 200
    assert waits.asked == []  # nothing written yet: nothing to wait for
    for _ in range(2):
        assert (await client.post("/api/jobs", json=JOB)).status_code == 202
    assert (await client.get("/api/jobs")).status_code == 200
    assert waits.asked == [(2, 2.0)]  # the newest event this API appended, bounded
    assert (await client.get("/api/events")).status_code == 200
    assert waits.asked == [(2, 2.0), (2, 2.0)]


async def test_a_page_waits_for_what_a_read_from_the_log_showed(
    lagging: tuple[httpx.AsyncClient, Waits, Any],
) -> None:
    client, waits, store = lagging
    job_id = (await client.post("/api/jobs", json=JOB)).json()["id"]
    await store.execute("job", job_id, RecordStatus(status="running", attempt=1, worker_id="w-1"))
    await store.execute("job", job_id, RecordStatus(status="completed", attempt=1))
    assert (await client.get(f"/api/jobs/{job_id}")).json()["status"] == "completed"
    assert (await client.get("/api/jobs", params={"status": "completed"})).status_code == 200
    assert waits.asked == [(3, 2.0)]  # the completion it showed, not only the dispatch
