"""The API's error paths in process (no server): 500s and fencing answered as JSON with a trace
id, body limits without a Content-Length, strict number parsing, and what OpenAPI documents."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.eventstore.memory import InMemoryEventStore
from domain.commands import DispatchJob
from domain.specs import parse_job_spec
from services.api.app import create_app
from services.api.context import MAX_SEQ, ApiContext, parse_count, parse_time
from services.api.metrics import malformed_by_source
from services.brain.dispatcher import Dispatched, Dispatcher
from services.brain.leadership import Fenced
from services.executor import CommandExecutor

TOKEN = "unit-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOB = {"type": "command", "payload": {"command": "echo hi"}}


class RecordingDispatcher:
    """Stands in for the Brain's dispatcher: records specs, or raises what it is given."""

    def __init__(self, raises: Exception | None = None) -> None:
        self.raises = raises
        self.specs: list[Any] = []

    async def dispatch(self, spec: Any) -> Dispatched:
        if self.raises is not None:
            raise self.raises
        self.specs.append(spec)
        return Dispatched(f"job-{len(self.specs)}", len(self.specs), None)

    async def cancel(self, job_id: str, reason: str | None = None) -> int:
        if self.raises is not None:
            raise self.raises
        return 1


def api(dispatcher: Any, store: Any = None) -> httpx.AsyncClient:
    ctx = ApiContext(
        store=store, dispatcher=dispatcher, queue=None, read_model=None,  # type: ignore[arg-type]
        token=TOKEN,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ctx))
    return httpx.AsyncClient(transport=transport, base_url="http://brain", headers=AUTH)


async def test_an_unexpected_error_is_a_500_json_answer_with_a_trace_id() -> None:
    async with api(RecordingDispatcher(RuntimeError("disk on fire"))) as c:
        answer = await c.post("/api/jobs", json=JOB)
    assert answer.status_code == 500
    trace_id = answer.headers["x-trace-id"]
    assert len(trace_id) == 32
    assert answer.json() == {"error": "internal error", "traceId": trace_id}
    assert "disk on fire" not in answer.text  # details stay in the log


async def test_a_fenced_dispatch_is_a_503_with_the_reason() -> None:
    fenced = Fenced("brain-a may not append job events: the leader is brain-b (generation 3)")
    async with api(RecordingDispatcher(fenced)) as c:
        answer = await c.post("/api/jobs", json=JOB)
    assert answer.status_code == 503
    assert answer.json() == {"error": f"this Brain is no longer the leader: {fenced}"}
    assert answer.headers["x-trace-id"]


async def test_a_fenced_cancel_through_the_real_dispatcher_and_store_is_a_503() -> None:
    store = InMemoryEventStore()
    await CommandExecutor(store).execute(
        "job", "job-1", DispatchJob(spec=parse_job_spec(JOB)), new=True
    )

    class Lost:
        def check(self, aggregate: str) -> int | None:  # `Leadership.check` once another leads
            raise Fenced(f"brain-a may not append {aggregate} events: the leader is brain-b")

    executor = CommandExecutor(store, fence=Lost())
    async with api(Dispatcher(executor, queue=None), store) as c:  # type: ignore[arg-type]
        answer = await c.post("/api/jobs/job-1/cancel")
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "this Brain is no longer the leader: brain-a may not append job events:"
        " the leader is brain-b"
    }
    assert answer.headers["x-trace-id"]
    assert [e.envelope.type for e in (await store.load("job", "job-1")).events] == [
        "JobDispatched"
    ]  # nothing was appended


async def chunks(size: int, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        yield b" " * min(piece, size - sent)
        sent += piece


async def test_a_chunked_body_over_the_limit_is_a_413_and_one_under_it_is_read() -> None:
    dispatcher = RecordingDispatcher()
    async with api(dispatcher) as c:
        big = await c.post("/api/jobs", content=chunks((1 << 20) + 1))
        assert "content-length" not in big.request.headers  # it really was sent chunked
        assert big.status_code == 413
        assert big.json() == {"error": "request body larger than 1048576 bytes"}
        assert big.headers["x-trace-id"]

        async def small() -> AsyncIterator[bytes]:
            yield b'{"type": "command", '
            yield b'"payload": {"command": "echo chunked"}}'

        ok = await c.post(
            "/api/jobs", content=small(), headers={"content-type": "application/json"}
        )
    assert ok.status_code == 202, ok.text
    assert [spec.payload.command for spec in dispatcher.specs] == ["echo chunked"]


@pytest.mark.parametrize("length", ["²", "12x", "-1"])
async def test_a_content_length_that_is_not_a_number_is_a_400(length: str) -> None:
    async with api(RecordingDispatcher()) as c:
        request = c.build_request("POST", "/api/jobs", content=b"{}")
        request.headers["content-length"] = length
        answer = await c.send(request)
    assert answer.status_code == 400
    assert answer.json()["field"] == "Content-Length"


def test_numbers_are_ascii_digits_only_and_capped() -> None:
    assert parse_count("42") == 42
    assert parse_count("007") == 7
    assert parse_count("0" * 5000 + "9") == 9
    assert parse_count("9" * 5000) == MAX_SEQ  # int() alone refuses over 4300 digits
    for bad in ("²", "١٢", "-1", "+1", "1.0", "", " 1"):
        assert parse_count(bad) is None, bad


def test_times_are_iso_8601_and_in_range() -> None:
    assert parse_time("2026-01-02T03:04:05+02:00").isoformat() == "2026-01-02T01:04:05+00:00"  # type: ignore[union-attr]
    assert parse_time("2026-01-02").isoformat() == "2026-01-02T00:00:00+00:00"  # type: ignore[union-attr]
    for bad in ("yesterday", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "²"):
        assert parse_time(bad) is None, bad


async def test_openapi_documents_the_answers_the_app_gives() -> None:
    async with api(RecordingDispatcher()) as c:
        schema = (await c.get("/openapi.json")).json()
    paths = schema["paths"]
    for path, ops in paths.items():
        for method, op in ops.items():
            assert "422" not in op["responses"], (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert "400" in op["responses"], (method, path)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    ok = {
        ("get", "/api/jobs/{job_id}"): "Job", ("get", "/api/jobs/{job_id}/history"): "History",
        ("get", "/api/jobs"): "JobPage", ("post", "/api/jobs"): "Dispatched",
        ("post", "/api/jobs/{job_id}/cancel"): "CancelRequested",
        ("get", "/api/events"): "EventPage", ("get", "/api/extensions"): "Extensions",
        ("get", "/api/system/health"): "Health", ("get", "/api/system/handoff"): "Handoff",
        ("get", "/ping"): "Ping", ("get", "/brain/state"): "BrainState",
    }  # fmt: skip
    for (method, path), model in ok.items():
        answers = paths[path][method]["responses"]
        success = answers["202" if method == "post" else "200"]
        assert success["content"]["application/json"]["schema"]["$ref"].endswith(f"/{model}")
    assert set(paths["/api/jobs/{job_id}/cancel"]["post"]["responses"]) >= {
        "202", "400", "401", "404", "409", "413", "415", "503",
    }  # fmt: skip
    assert set(paths["/brain/state"]["get"]["responses"]) == {"200"}
    assert "401" not in paths["/ping"]["get"]["responses"]
    assert "503" in paths["/ping"]["get"]["responses"]
    stream = paths["/api/jobs/{job_id}/stream"]["get"]["responses"]["200"]
    assert "text/event-stream" in stream["content"]
    job = schema["components"]["schemas"]["Job"]["properties"]
    assert {"workerId", "cancelRequested", "dispatchedSeq"} <= set(job)


def test_malformed_messages_are_labelled_by_the_path_that_read_them() -> None:
    assert malformed_by_source({}) == {"ingest": 0}
    assert malformed_by_source({"malformed": 3}) == {"ingest": 3}
    assert malformed_by_source({"malformed": {"ingest": 1, "tasks": 2, "health": 0}}) == {
        "ingest": 1, "tasks": 2, "health": 0,
    }  # fmt: skip


async def test_curl_s_form_label_on_a_json_body_is_read_as_json() -> None:
    """`curl -XPOST … -d '{…}'` (the README's example) sends a form content type."""
    dispatcher = RecordingDispatcher()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with api(dispatcher) as c:
        answer = await c.post("/api/jobs", content=json.dumps(JOB), headers=form)
        assert answer.status_code == 202, answer.text
        assert dispatcher.specs[0].type == "command"
        not_json = await c.post("/api/jobs", content="type=command", headers=form)
        assert not_json.status_code == 400
        assert not_json.json()["error"] == "body: not valid JSON"


async def test_a_body_of_another_type_is_a_415_naming_it() -> None:
    dispatcher = RecordingDispatcher()
    async with api(dispatcher) as c:
        answer = await c.post(
            "/api/jobs", content=json.dumps(JOB), headers={"Content-Type": "text/plain"}
        )
    assert answer.status_code == 415
    assert answer.json()["error"] == (
        "the body must be JSON (Content-Type: application/json), not text/plain"
    )
    assert not dispatcher.specs


async def test_a_body_that_is_not_utf8_is_a_400_naming_the_body() -> None:
    """Found by fuzzing: FastAPI's own "error parsing the body" answer named no field."""
    async with api(RecordingDispatcher()) as c:
        answer = await c.post(
            "/api/jobs", content=b"\x80", headers={"content-type": "application/json"}
        )
    assert answer.status_code == 400
    assert answer.json() == {"error": "body: not valid JSON (not UTF-8 text)", "field": "body"}
