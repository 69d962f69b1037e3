"""The read side of the API alone (`baker api`): the Brain's app and routes on a context that
only reads. Reads are answered (a job the read model lacks yet is folded from the log), every
write is refused with 405 naming the Brain, before any route runs; its executor is fenced."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adapters.eventstore.memory import InMemoryEventStore
from adapters.sqlite import ReadModel, connect_writer, ensure_schema, initialise
from domain.commands import DispatchJob
from domain.specs import parse_job_spec
from services.api.app import create_app
from services.api.context import ApiContext, BrainStatus
from services.api.read_only import NoWrites
from services.brain.dispatcher import Dispatcher
from services.brain.leadership import Fenced
from services.executor import CommandExecutor
from tests.fakes.jobqueue import FakeJobQueue

BRAIN = "http://brain.example:3000"
JOB = {"type": "command", "payload": {"command": "echo hi"}}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryEventStore]]:
    path = tmp_path / "readmodel.db"
    initialise(path)
    with contextlib.closing(connect_writer(path)) as db:
        ensure_schema(db)
    store, queue = InMemoryEventStore(), FakeJobQueue()
    read_model = ReadModel(path)
    ctx = ApiContext(
        store=store, dispatcher=Dispatcher(CommandExecutor(store, fence=NoWrites()), queue),
        queue=queue, read_model=read_model, read_only=True, brain_url=BRAIN,
        brain=BrainStatus(instance="api-1", mode="read-only"),
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client, store
    await read_model.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/jobs"), ("POST", "/api/jobs/batch"), ("POST", "/api/jobs/j-1/cancel"),
        ("POST", "/api/queue/pause"), ("POST", "/api/schedules"),
        ("DELETE", "/api/schedules/nightly"), ("PUT", "/api/jobs"), ("PATCH", "/api/jobs"),
    ],
)  # fmt: skip
async def test_every_write_is_refused_naming_the_brain(
    api: tuple[httpx.AsyncClient, InMemoryEventStore], method: str, path: str
) -> None:
    client, store = api
    answer = await client.request(method, path, json=JOB)
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == "GET, HEAD, OPTIONS"
    assert answer.json()["brain"] == BRAIN
    assert f"send {method} requests to the Brain at {BRAIN}" in answer.json()["error"]
    assert answer.headers["x-trace-id"] is not None
    assert await store.head_seq() == 0  # nothing was appended


async def test_reads_are_answered_from_the_read_model_and_the_log(
    api: tuple[httpx.AsyncClient, InMemoryEventStore],
) -> None:
    client, store = api
    spec = parse_job_spec(JOB)
    await CommandExecutor(store).execute("job", "job-r1", DispatchJob(spec=spec), new=True)
    job = await client.get("/api/jobs/job-r1")  # not in the read model yet: from the log
    assert job.status_code == 200 and job.json()["status"] == "dispatched"
    assert (await client.get("/api/jobs")).status_code == 200
    assert (await client.get("/api/queue")).status_code == 200
    ping = await client.get("/ping")
    assert ping.status_code == 200 and ping.json()["service"] == "api"
    assert (await client.get("/")).status_code == 200  # the dashboard
    assert (await client.get("/api/schedules")).status_code == 503  # the Brain's


async def test_the_read_only_executor_never_appends() -> None:
    store = InMemoryEventStore()
    with pytest.raises(Fenced, match="only reads"):
        await CommandExecutor(store, fence=NoWrites()).execute(
            "job", "job-x", DispatchJob(spec=parse_job_spec(JOB)), new=True
        )
    assert await store.head_seq() == 0
