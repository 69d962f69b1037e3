"""POST /api/jobs answered by `FastDispatch` without FastAPI's machinery: a valid body is
dispatched there, anything else goes on whole to the FastAPI route (which answers the errors),
and every other request passes through untouched."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import Message, Receive, Scope, Send

from services.api.app import create_app
from services.api.context import ApiContext
from services.api.dispatch_route import FastDispatch
from services.brain.dispatcher import Dispatched
from services.brain.leadership import Fenced

JOB = {"type": "command", "payload": {"command": "echo hi"}}


class Recorder:
    """A dispatcher that records the specs it is given."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.specs: list[Any] = []
        self.fail = fail

    async def dispatch(self, spec: Any) -> Dispatched:
        if self.fail is not None:
            raise self.fail
        self.specs.append(spec)
        return Dispatched(f"job-{len(self.specs):016x}", len(self.specs), None)


class Inner:
    """The app behind the fast path: records what reached it and the body it read."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message: Message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.calls.append((scope["method"], scope["path"], body))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


def context(dispatcher: Recorder) -> ApiContext:
    return ApiContext(store=None, dispatcher=dispatcher, queue=None, read_model=None)  # type: ignore[arg-type]


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://brain")


async def test_a_valid_job_is_dispatched_without_the_route() -> None:
    inner, jobs = Inner(), Recorder()
    async with client(FastDispatch(inner, context(jobs))) as c:
        answer = await c.post("/api/jobs", json={**JOB, "labels": {"team": "infra"}})
    assert answer.status_code == 202
    assert answer.json() == {"id": "job-0000000000000001", "status": "dispatched", "traceId": None}
    assert inner.calls == []
    (spec,) = jobs.specs
    assert spec.payload.command == "echo hi" and spec.labels == {"team": "infra"}


async def test_an_invalid_body_goes_on_whole_to_the_route() -> None:
    inner, jobs = Inner(), Recorder()

    async def in_pieces() -> Any:  # a chunked body: read whole, handed on whole
        yield b'{"type": "shell", '
        yield b'"payload": {}}'

    async with client(FastDispatch(inner, context(jobs))) as c:
        wrong = await c.post("/api/jobs", content=in_pieces())
        broken = await c.post("/api/jobs", content=b"{not json")
    assert (wrong.status_code, broken.status_code) == (299, 299)
    assert inner.calls == [
        ("POST", "/api/jobs", b'{"type": "shell", "payload": {}}'),
        ("POST", "/api/jobs", b"{not json"),
    ]
    assert jobs.specs == []


async def test_other_routes_and_methods_pass_through() -> None:
    inner = Inner()
    async with client(FastDispatch(inner, context(Recorder()))) as c:
        await c.get("/api/jobs")
        await c.post("/api/jobs/batch", json={"jobs": [JOB]})
        await c.post("/api/jobs/job-1/cancel")
    assert [(m, p) for m, p, _ in inner.calls] == [
        ("GET", "/api/jobs"), ("POST", "/api/jobs/batch"), ("POST", "/api/jobs/job-1/cancel"),
    ]  # fmt: skip


async def test_through_the_app_both_paths_answer_as_one_route() -> None:
    """Counted under the route with a trace id, behind auth; errors as FastAPI's route gives
    them; a fenced Brain refused as on every route."""
    ctx = context(Recorder())
    ctx.token = "s3cret"
    app = create_app(ctx)
    auth = {"Authorization": "Bearer s3cret"}
    async with client(app) as c:
        refused = await c.post("/api/jobs", json=JOB)
        ok = await c.post("/api/jobs", json=JOB, headers=auth)
        missing = await c.post("/api/jobs", json={"payload": {}}, headers=auth)
        typed = {**auth, "Content-Type": "application/json"}
        not_json = await c.post("/api/jobs", content=b"{", headers=typed)
    assert refused.status_code == 401
    assert ok.status_code == 202 and ok.headers["X-Trace-Id"] is not None
    assert missing.status_code == 400 and missing.json()["error"] == "type: is required"
    assert not_json.status_code == 400 and not_json.json()["error"] == "body: not valid JSON"
    assert app.state.requests[("/api/jobs", 202)] == 1
    assert app.state.requests[("/api/jobs", 400)] == 2
    ctx.dispatcher = Recorder(fail=Fenced("generation 3 took over"))  # type: ignore[assignment]
    async with client(app) as c:
        fenced = await c.post("/api/jobs", json=JOB, headers=auth)
    assert fenced.status_code == 503
    assert fenced.json()["error"].startswith("this Brain is no longer the leader")
