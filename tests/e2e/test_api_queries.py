"""The Brain API of a running `baker up` (with `BAKER_CORS_ORIGINS`): CORS, the job list as of
a sequence or a time, the event search, input that used to be a 500, chunked bodies, and the
malformed-message counter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import nats
import pytest

from tests.e2e.system import System, running_with
from tests.polling import until

ORIGIN = "http://dashboard.example"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data = tmp_path_factory.mktemp("api-queries") / "data"
    with running_with(data, {"BAKER_CORS_ORIGINS": ORIGIN}) as s:
        yield s


def client(system: System) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=system.url, headers=system.headers, timeout=30)


async def finished_job(c: httpx.AsyncClient, command: str) -> tuple[str, list[dict[str, Any]]]:
    """Dispatch a command, wait until the read model has it completed; (id, its history)."""
    answer = await c.post("/api/jobs", json={"type": "command", "payload": {"command": command}})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]

    async def done() -> bool:
        return bool((await c.get(f"/api/jobs/{job_id}")).json()["status"] == "completed")

    await until(done, f"{job_id} completed in the read model", timeout=30)
    return job_id, (await c.get(f"/api/jobs/{job_id}/history")).json()["events"]


def by_type(history: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["type"]: e for e in history}


async def test_cors_answers_the_configured_origin_and_no_other(system: System) -> None:
    async with client(system) as c:
        allowed = await c.get("/api/jobs", headers={"Origin": ORIGIN})
        other = await c.get("/api/jobs", headers={"Origin": "http://evil.example"})
        preflight = await c.options(
            "/api/jobs",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        refused = await c.options(
            "/api/jobs",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "x-trace-id" in allowed.headers["access-control-expose-headers"].lower()
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in refused.headers
    for answer in (allowed, other, preflight, refused):
        assert answer.headers["x-trace-id"]


async def test_the_job_list_as_of_a_sequence_and_a_time(system: System) -> None:
    async with client(system) as c:
        first, first_history = await finished_job(c, "echo first")
        second, _ = await finished_job(c, "echo second")
        events = by_type(first_history)

        async def as_of(value: str, **params: str) -> dict[str, str]:
            answer = await c.get("/api/jobs", params={"asOf": value, "limit": "500", **params})
            assert answer.status_code == 200, answer.text
            return {j["id"]: j["status"] for j in answer.json()["jobs"]}

        dispatched = await as_of(str(events["JobDispatched"]["seq"]))
        received = await as_of(events["JobReceived"]["occurredAt"])
        between = await as_of(events["JobCompleted"]["occurredAt"])
        now = await as_of("9" * 30)  # past the end of the log: as of now
        completed_then = await as_of(str(events["JobDispatched"]["seq"]), status="completed")
        live = {j["id"]: j["status"] for j in (await c.get("/api/jobs?limit=500")).json()["jobs"]}
    assert dispatched[first] == "dispatched" and second not in dispatched
    assert received[first] == "received" and second not in received
    assert between[first] == "completed" and second not in between
    assert now[first] == now[second] == "completed"
    assert now == live
    assert first not in completed_then


async def test_events_are_searched_by_job_type_worker_and_time(system: System) -> None:
    async with client(system) as c:
        job_id, history = await finished_job(c, "echo searched")
        events = by_type(history)
        worker = events["JobReceived"]["data"]["workerId"]

        async def search(**params: str) -> dict[str, Any]:
            answer = await c.get("/api/events", params=params)
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        everything = await search(jobId=job_id)
        completed = await search(jobId=job_id, type="JobCompleted")
        on_worker = await search(workerId=worker, limit="500")
        window = await search(
            jobId=job_id,
            since=events["JobReceived"]["occurredAt"],
            until=events["JobCompleted"]["occurredAt"],
        )
        first = await search(jobId=job_id, limit="1")
        refused = await c.post(f"/api/jobs/{job_id}/cancel")
        assert refused.status_code == 409

        async def rejection() -> Any:
            found = await search(jobId=job_id, type="TransitionRejected")
            return found if found["events"] else None

        rejected = await until(rejection, "the rejection in the read model", timeout=30)
    assert [(e["seq"], e["type"]) for e in everything["events"]] == [
        (e["seq"], e["type"]) for e in history
    ]
    assert everything["more"] is False
    assert [e["seq"] for e in completed["events"]] == [events["JobCompleted"]["seq"]]
    assert on_worker["events"] and {e["data"]["workerId"] for e in on_worker["events"]} == {worker}
    assert events["JobReceived"]["seq"] in {e["seq"] for e in on_worker["events"]}
    assert [e["type"] for e in window["events"]] == ["JobReceived", "JobStarted", "JobCompleted"]
    assert [e["type"] for e in first["events"]] == ["JobDispatched"] and first["more"] is True
    assert rejected["events"][0]["data"]["attempted"] == "request_cancel"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"jobId": "a.b"}, "jobId"),
        ({"jobId": ""}, "jobId"),
        ({"type": "JobExploded"}, "type"),
        ({"workerId": "w" * 129}, "workerId"),
        ({"since": "yesterday"}, "since"),
        ({"until": "0001-01-01T00:00:00+05:00"}, "until"),
        ({"since": "2030-01-01", "until": "2020-01-01"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "²"}, "limit"),
    ],
)
async def test_a_bad_event_search_is_a_400_naming_the_field(
    system: System, params: dict[str, str], field: str
) -> None:
    async with client(system) as c:
        answer = await c.get("/api/events", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field and answer.json()["error"].startswith(f"{field}: ")
    assert answer.headers["x-trace-id"]


@pytest.mark.parametrize(
    ("path", "params", "headers", "field"),
    [
        ("/api/jobs", {"asOf": "²"}, {}, "asOf"),
        ("/api/jobs", {"asOf": "0001-01-01T00:00:00+05:00"}, {}, "asOf"),
        ("/api/events/stream", {}, {"Last-Event-ID": b"\xb2"}, "Last-Event-ID"),
        ("/api/events/stream", {}, {"Last-Event-ID": "-1"}, "Last-Event-ID"),
        ("/api/jobs/job-x/stream", {}, {"Last-Event-ID": b"\xb2"}, "Last-Event-ID"),
    ],
)
async def test_input_that_was_a_500_is_a_400(
    system: System, path: str, params: dict[str, str], headers: dict[str, Any], field: str
) -> None:
    async with client(system) as c:
        answer = await c.get(path, params=params, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field
    assert answer.headers["x-trace-id"]


async def test_a_chunked_body_over_a_mebibyte_is_a_413(system: System) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b" " * (64 * 1024)

    async with client(system) as c:
        answer = await c.post("/api/jobs", content=body())
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413
    assert answer.json() == {"error": "request body larger than 1048576 bytes"}
    assert answer.headers["x-trace-id"]


def malformed_count(metrics: str, source: str = "ingest") -> float:
    for line in metrics.splitlines():
        if line.startswith(f'baker_malformed_messages_total{{source="{source}"}} '):
            return float(line.split()[-1])
    raise AssertionError(f"no {source} malformed counter in:\n{metrics}")


async def test_malformed_heartbeats_and_task_messages_are_counted_by_source(
    system: System,
) -> None:
    async with client(system) as c:
        text = (await c.get("/metrics")).text
        before = {s: malformed_count(text, s) for s in ("tasks", "health", "handoff")}
        # Each as the role that may send it: a daemon's heartbeat, a task runner's status.
        nc = await nats.connect(system.nats_as("projector"))
        runner = await nats.connect(system.nats_as("task-runner"))
        try:
            await nc.publish("baker.system.health", b"[not a heartbeat")
            await runner.jetstream().publish("baker.tasks.status.task-garbled", b"{not json")
        finally:
            await nc.close()
            await runner.close()

        async def counted() -> bool:
            text = (await c.get("/metrics")).text
            return all(malformed_count(text, s) > before[s] for s in ("tasks", "health"))

        await until(counted, "malformed task and health messages counted", timeout=30)


async def test_a_malformed_status_message_is_counted_in_metrics(system: System) -> None:
    async with client(system) as c:
        before = malformed_count((await c.get("/metrics")).text)
        nc = await nats.connect(system.nats_as("worker"))
        try:
            await nc.jetstream().publish("baker.jobs.status.job-garbled", b"{not json")
        finally:
            await nc.close()

        async def counted() -> bool:
            return malformed_count((await c.get("/metrics")).text) >= before + 1

        await until(counted, "the malformed status message counted", timeout=30)
