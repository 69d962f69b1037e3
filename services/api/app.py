"""The Brain's HTTP API (DESIGN §8) on FastAPI: middleware, errors, and the router wiring.

Every answer carries `X-Trace-Id` (a 500 included); every error is JSON `{"error": ...}`;
bearer auth is compared in constant time; a body is at most `max_body` bytes, with or without
a `Content-Length`; while the Brain is not active every route but `/ping` and `/brain/state`
answers 503.
"""

from __future__ import annotations

import hmac
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters import tracing
from adapters.eventstore import StoreUnavailable
from domain.errors import first_error
from services.api import agent_routes, job_control, jobs, queue_routes, schedules, system, usage
from services.api.context import ApiContext, ErrorBody, error, parse_count, unavailable_answer
from services.api.dispatch_route import FastDispatch, dispatch_route
from services.api.read_only import READS, writes_go_to_the_brain
from services.brain.leadership import Fenced

log = logging.getLogger("baker.api")
OPEN = {"/ping", "/brain/state", "/", "/openapi.json", "/docs", "/favicon.ico"}
ALWAYS = {"/ping", "/brain/state"}
STATIC = Path(__file__).parent / "static"
REASONS = {
    400: "bad input: the reason names the field", 401: "missing or wrong bearer token",
    404: "no such resource", 409: "the job has already finished",
    413: "request body too large", 415: "the body is not JSON",
    503: "the Brain is not active, or a dependency is down",
}  # fmt: skip


class ApiError(Exception):
    """An error with its HTTP status and a reason for the client."""

    def __init__(self, status: int, reason: str, **extra: object) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Baker Street jobs", version="0.1.0", docs_url="/docs", redoc_url=None,
        # `Traced` makes the one span of a request (its id is `X-Trace-Id`): FastAPI's own
        # instrumentation would add a second span, and metrics, to every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )  # fmt: skip
    app.state.ctx = ctx
    app.state.requests = Counter()
    _install_errors(app)
    app.include_router(job_control.router)  # before `jobs`: /api/jobs/batch is not a job id
    app.include_router(jobs.router)
    app.include_router(agent_routes.router)
    app.include_router(system.router)
    app.include_router(usage.router)
    app.include_router(schedules.router)
    app.include_router(queue_routes.router)
    _document_errors(app)
    # Middleware added first runs innermost: FastDispatch inside Guard, Traced outermost.
    app.add_middleware(FastDispatch, ctx=ctx, route=dispatch_route(jobs.router.routes))
    app.add_middleware(Guard, ctx=ctx)
    if ctx.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(ctx.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["X-Trace-Id"],
        )
    app.add_middleware(Traced, requests=app.state.requests)  # outermost: sees every answer

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app


class Traced:
    """A span per request, its trace id in `X-Trace-Id` on every answer, requests counted; an
    unhandled error becomes a 500 JSON answer here, inside the span, so it has the id too."""

    def __init__(self, app: ASGIApp, requests: Counter[tuple[str, int]]) -> None:
        self.app = app
        self.requests = requests
        self.tracer = tracing.tracer("baker.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with tracing.span(self.tracer, f"http {scope['method']}") as span:
            trace_id = tracing.trace_id_of(span) or ""
            scope.setdefault("state", {})["trace_id"] = trace_id
            status = 0

            async def send_traced(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    MutableHeaders(scope=message)["X-Trace-Id"] = trace_id
                await send(message)

            try:
                await self.app(scope, receive, send_traced)
            except Exception:
                log.exception("unhandled error on %s", scope["path"], extra={"trace_id": trace_id})
                if status:  # the answer had begun: nothing better to do than end the connection
                    raise
                answer = error(500, "internal error", traceId=trace_id)
                await answer(scope, receive, send_traced)
            finally:
                path = getattr(scope.get("route"), "path", "unmatched")
                self.requests[(path, status or 500)] += 1


class Guard:
    """Draining (503), auth (401) and body size (413) before any route runs."""

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx
        self.expected = f"Bearer {ctx.token}".encode() if ctx.token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is None and "content-length" not in headers and "transfer-encoding" in headers:
            receive, refusal = await self._buffered(receive)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope, refusal = _json_body(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        self.ctx.brain.inflight += 1  # a draining Brain waits for these before handing over
        try:
            await self.app(scope, receive, send)
        finally:
            self.ctx.brain.inflight -= 1

    def _refusal(self, scope: Scope, headers: Headers) -> JSONResponse | None:
        path, brain = scope["path"], self.ctx.brain
        if path not in ALWAYS and not brain.accepting:
            return error(503, "service draining", state=brain.state)
        if self.expected is not None and path not in OPEN and scope["method"] != "OPTIONS":
            given = headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, self.expected):
                return error(401, "unauthorized")
        if self.ctx.read_only and scope["method"] not in READS:
            return writes_go_to_the_brain(scope["method"], self.ctx.brain_url)
        length = headers.get("content-length")
        if length is not None:
            size = parse_count(length.strip())
            if size is None:
                return error(400, "Content-Length: not a number", field="Content-Length")
            if size > self.ctx.max_body:
                return self._too_large()
        return None

    def _too_large(self) -> JSONResponse:
        return error(413, f"request body larger than {self.ctx.max_body} bytes")

    async def _buffered(self, receive: Receive) -> tuple[Receive, JSONResponse | None]:
        """Read a body of unknown length (chunked) up to the limit, then hand it on whole."""
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return receive, None  # the client went away: nothing to answer
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.ctx.max_body:
                return receive, self._too_large()
            more = message.get("more_body", False)
        whole: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replay() -> Message:
            return whole.pop() if whole else await receive()

        return replay, None


_FORM = "application/x-www-form-urlencoded"


def _json_body(scope: Scope, headers: Headers) -> tuple[Scope, JSONResponse | None]:
    """Every body we take is JSON. `curl -d '{...}'` labels it as a form unless told otherwise,
    so that label is read as JSON (a body that is not JSON is then refused as such); any other
    non-JSON type is refused naming it, instead of a validation error about a missing field."""
    kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not kind or kind == "application/json" or kind.endswith("+json"):
        return scope, None
    if kind != _FORM:
        return scope, error(
            415, f"the body must be JSON (Content-Type: application/json), not {kind}"
        )
    rest = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
    return {**scope, "headers": [*rest, (b"content-type", b"application/json")]}, None


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.reason, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error(400, "body: not valid JSON", field="body")
        field, message = first_error(exc)  # type: ignore[arg-type]
        field = field.removeprefix("body.").removeprefix("query.").removeprefix("path.")
        return error(400, f"{field}: {message}", field=field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and reason == "Not Found":
            reason = "no such route"
        if exc.status_code == 400 and reason == _UNPARSABLE:  # found by fuzzing: b"\x80"
            return error(400, "body: not valid JSON (not UTF-8 text)", field="body")
        return error(exc.status_code, reason)

    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(Fenced)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        answer = unavailable_answer(exc, request.url.path)
        assert answer is not None
        return answer


_UNPARSABLE = "There was an error parsing the body"  # FastAPI's words for a body it cannot read


def _document_errors(app: FastAPI) -> None:
    """OpenAPI: the 4xx/503 answers the app really gives, instead of FastAPI's unused 422."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for method, op in operations.items():
                op["responses"].pop("422", None)
                for code in _error_codes(path, method, op):
                    op["responses"].setdefault(str(code), _error_response(code))
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["ErrorBody"] = ErrorBody.model_json_schema()
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _error_codes(path: str, method: str, op: dict[str, Any]) -> list[int]:
    codes = [400] if op.get("parameters") or op.get("requestBody") else []
    codes += [401] if path not in OPEN else []
    codes += [404] if "{" in path else []
    codes += [409] if path.endswith("/cancel") else []
    codes += [413, 415] if method == "post" else []
    codes += [503] if path not in ALWAYS or path == "/ping" else []
    return codes


def _error_response(code: int) -> dict[str, Any]:
    body = {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
    return {"description": REASONS[code], "content": {"application/json": body}}
