"""The Brain's HTTP API (DESIGN §8) on FastAPI: middleware, errors, and the router wiring.

Every answer carries `X-Trace-Id`; every error is JSON `{"error": ...}`; bearer auth is
compared in constant time; while the Brain is not active every route but `/ping` and
`/brain/state` answers 503.
"""

from __future__ import annotations

import hmac
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters import tracing
from adapters.eventstore import StoreUnavailable
from domain.errors import first_error
from services.api import jobs, system
from services.api.context import ApiContext

log = logging.getLogger("baker.api")
OPEN = {"/ping", "/brain/state", "/", "/openapi.json", "/docs", "/favicon.ico"}
ALWAYS = {"/ping", "/brain/state"}
STATIC = Path(__file__).parent / "static"


class ApiError(Exception):
    """An error with its HTTP status and a reason for the client."""

    def __init__(self, status: int, reason: str, **extra: object) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra


def error(status: int, reason: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status)


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="Baker Street jobs", version="0.1.0", docs_url="/docs", redoc_url=None)
    app.state.ctx = ctx
    app.state.requests = Counter()
    _install_errors(app)
    app.middleware("http")(_guard(ctx))
    app.middleware("http")(_trace(app))
    if ctx.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(ctx.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["X-Trace-Id"],
        )
    app.include_router(jobs.router)
    app.include_router(system.router)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app


def _trace(
    app: FastAPI,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    tracer = tracing.tracer("baker.api")

    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        with tracer.start_as_current_span(f"http {request.method}") as span:
            trace_id = tracing.trace_id_of(span) or ""
            request.state.trace_id = trace_id
            response = await call_next(request)
            response.headers["X-Trace-Id"] = trace_id
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            app.state.requests[(path, response.status_code)] += 1
            return response

    return middleware


def _guard(
    ctx: ApiContext,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    expected = f"Bearer {ctx.token}".encode() if ctx.token else None

    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path not in ALWAYS and not ctx.brain.accepting:
            return error(503, "service draining", state=ctx.brain.state)
        if expected is not None and path not in OPEN and request.method != "OPTIONS":
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return error(401, "unauthorized")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > ctx.max_body):
            return error(413, f"request body larger than {ctx.max_body} bytes")
        if request.method != "POST":
            return await call_next(request)
        ctx.brain.inflight += 1  # a draining Brain waits for these before handing over
        try:
            return await call_next(request)
        finally:
            ctx.brain.inflight -= 1

    return middleware


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.reason, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        field, message = first_error(exc)  # type: ignore[arg-type]
        field = field.removeprefix("body.").removeprefix("query.").removeprefix("path.")
        return error(400, f"{field}: {message}", field=field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and reason == "Not Found":
            reason = "no such route"
        return error(exc.status_code, reason)

    @app.exception_handler(StoreUnavailable)
    async def unavailable(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        return error(503, f"event store unavailable: {exc}")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error(500, "internal error", traceId=getattr(request.state, "trace_id", None))
