"""Fuzzing the API's bodies in process (the FastAPI app over httpx's ASGI transport, the real
Dispatcher, Scheduler, approvals and forks over the in-memory event store and job queue):
whatever the body of POST /api/jobs, /api/jobs/batch, /api/schedules, /approve or /fork, the
answer is never a 5xx, and a refusal is JSON naming what is wrong (a 400 names the field)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.eventstore.memory import InMemoryEventStore
from adapters.sqlite import ReadModel, connect_writer, ensure_schema, initialise
from services.api.app import create_app
from services.api.context import ApiContext
from services.brain.dispatcher import Dispatcher
from services.brain.idempotency import IdempotentDispatch
from services.brain.scheduler import Scheduler
from services.executor import CommandExecutor
from tests.fakes.clock import FakeClock
from tests.fakes.idempotency import FakeIdempotencyKeys
from tests.fakes.jobqueue import FakeJobQueue
from tests.fuzz.strategies import TEXT, documents, json_values
from tests.unit.test_approvals import waiting_job

EXAMPLES = int(os.environ.get("BAKER_FUZZ_EXAMPLES", "100"))
WAITING = "job-w"  # an agent job waiting for an approval, with two recorded steps

SPEC_KEYS = [
    "type", "payload", "command", "url", "method", "headers", "json", "timeoutSeconds", "prompt",
    "model", "maxTokens", "system", "budget", "maxTotalTokens", "maxCostUsd", "approve",
    "approvalTimeoutSeconds", "labels", "idempotencyKey", "concurrencyKey", "concurrencyLimit",
    "priority", "retry", "maxAttempts", "initialSeconds", "multiplier", "maxSeconds", "runAt",
    "delaySeconds",
]  # fmt: skip
JOBS: list[dict[str, Any]] = [
    {"type": "command", "payload": {"command": "echo hi"}},
    {"type": "http", "payload": {"url": "https://example.com/x", "method": "POST",
                                 "headers": {"Accept": "json"}, "json": {"a": 1}}},
    {"type": "agent", "payload": {"prompt": "hi", "approve": ["command"]},
     "retry": {"maxAttempts": 3}, "labels": {"team": "ops"}, "priority": "high"},
    {"type": "command", "payload": {"command": "date"}, "idempotencyKey": "k-1",
     "concurrencyKey": "db", "concurrencyLimit": 2, "delaySeconds": 5},
]  # fmt: skip


def job_bodies() -> st.SearchStrategy[Any]:
    """A job spec: one of a few valid ones with fields changed (the payload too), or any."""
    near = st.sampled_from(JOBS).flatmap(
        lambda job: st.one_of(
            documents(SPEC_KEYS, job),
            documents(SPEC_KEYS, job["payload"]).map(lambda p: {**job, "payload": p}),
        )
    )
    return st.one_of(near, near, documents(SPEC_KEYS))


SCHEDULE = {"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris", "job": JOBS[0]}
ROUTES: dict[str, st.SearchStrategy[Any]] = {
    "/api/jobs": job_bodies(),
    "/api/jobs/batch": st.one_of(
        st.lists(job_bodies(), max_size=4).map(lambda jobs: {"jobs": jobs}),
        documents(["jobs"], {"jobs": JOBS}),
    ),
    "/api/schedules": st.one_of(
        documents(["name", "cron", "everySeconds", "timezone", "job"], SCHEDULE),
        job_bodies().map(lambda job: {**SCHEDULE, "job": job}),
    ),
    f"/api/jobs/{WAITING}/approve": documents(
        ["approve", "note", "toolUseId"], {"approve": True, "note": "ok"}
    ),
    f"/api/jobs/{WAITING}/fork": documents(
        ["fromStep", "model", "prompt", "system"], {"fromStep": 1, "prompt": "again"}
    ),
}
JOB_IDS = st.one_of(
    st.sampled_from([WAITING, "job-0123456789abcdef", "x", "job.1", "%2e%2e", "a" * 200]), TEXT
)


@pytest.fixture(scope="module")
def read_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "readmodel.db"
    initialise(path)
    with contextlib.closing(connect_writer(path)) as db:
        ensure_schema(db)
    return path


@pytest.fixture(scope="module", autouse=True)
def timed() -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"\nfuzz API: {time.perf_counter() - started:.1f} s")  # shown with -s


@contextlib.asynccontextmanager
async def brain_api(read_model_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh API over a fresh Brain (in memory), with one agent job waiting for approval."""
    clock = FakeClock()
    executor = CommandExecutor(InMemoryEventStore())
    queue = FakeJobQueue(clock=clock)
    dispatcher = Dispatcher(executor, queue)
    await waiting_job(executor, WAITING)
    read_model = ReadModel(read_model_path)
    ctx = ApiContext(
        store=executor.store, dispatcher=dispatcher, queue=queue, read_model=read_model,
        scheduler=Scheduler(executor, dispatcher, clock=clock),
        idempotent=IdempotentDispatch(dispatcher, FakeIdempotencyKeys(clock, 60.0)),
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ctx))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://brain") as client:
            yield client
    finally:
        await read_model.close()


def check(answer: httpx.Response, sent: object) -> None:
    """Never a 5xx; every refusal JSON saying why; a 400 (or 422) names the field."""
    where = f"{answer.request.method} {answer.request.url.path} {sent!r:.300} -> {answer.text:.300}"
    assert answer.status_code < 500, where
    if answer.status_code < 400:
        return
    doc = answer.json()
    assert isinstance(doc.get("error"), str) and doc["error"], where
    if answer.status_code in (400, 422):
        assert isinstance(doc.get("field"), str) and doc["field"], where


BODIES = st.one_of(
    st.tuples(st.just("json"), st.sampled_from(sorted(ROUTES)).flatmap(
        lambda route: st.tuples(st.just(route), ROUTES[route]))),
    st.tuples(st.just("bytes"), st.tuples(st.sampled_from(sorted(ROUTES)), st.binary(max_size=40))),
)  # fmt: skip


@settings(
    max_examples=EXAMPLES * 5, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(BODIES)
async def test_no_body_gets_a_5xx_and_every_refusal_names_what_is_wrong(
    read_model_path: Path, case: tuple[str, tuple[str, Any]]
) -> None:
    how, (route, body) = case
    async with brain_api(read_model_path) as client:
        if how == "json":
            answer = await client.post(route, content=json.dumps(body).encode(),
                                       headers={"content-type": "application/json"})  # fmt: skip
        else:
            answer = await client.post(route, content=body,
                                       headers={"content-type": "application/json"})  # fmt: skip
    check(answer, body)


@settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(JOB_IDS, st.sampled_from(["approve", "fork", "rerun", "cancel"]), json_values(["approve"]))
async def test_any_job_id_in_the_path_is_answered_without_a_5xx(
    read_model_path: Path, job_id: str, verb: str, body: Any
) -> None:
    async with brain_api(read_model_path) as client:
        answer = await client.post(
            f"/api/jobs/{quote(job_id, safe='')}/{verb}",
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
    check(answer, (job_id, body))
