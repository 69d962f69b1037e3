"""POST /api/jobs, the API's hottest route, answered without FastAPI's per-request machinery.

FastAPI spends ~0.12 ms of CPU per request on this route in its routing, dependency solving,
exception middleware and request/response objects, around ~0.01 ms of work of our own (a
~0.16 ms POST measured in process with a dispatcher that does nothing). `FastDispatch` sits
inside `Traced` and `Guard` (so the span, trace id, auth, draining, the body limit and the JSON
content type are as for every route) and answers a body that validates as a `DispatchRequest`
itself; any other body goes on to the FastAPI route, which documents the route and answers the
invalid ones with the same errors as before. Both answer through `answer_dispatch`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.errors import FieldError
from domain.queue import QueueFull
from domain.specs import parse_job_spec
from services.api.context import ApiContext, error, unavailable_answer
from services.api.job_control import HEADER, dispatch_with_key, with_header_key
from services.brain.dispatcher import DispatchFailed

PATH = "/api/jobs"


class DispatchRequest(BaseModel):
    """A job to run: `agent` {prompt, model?, maxTokens?, system?}, `command` {command},
    or `http` {url, method?, headers?, json?, timeoutSeconds?}."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["agent", "command", "http"]
    payload: dict[str, Any]
    timeoutSeconds: int | None = Field(default=None, ge=1, le=86_400)  # noqa: N815 - JSON name
    labels: dict[str, Any] | None = Field(default=None, description="{key: value}, filterable")
    idempotencyKey: str | None = Field(  # noqa: N815
        default=None, description="a repeat within BAKER_IDEMPOTENCY_TTL answers the first job"
    )
    priority: Literal["high", "normal", "low"] | None = None  # DESIGN §11: the job's lane
    # Job control (DESIGN §11): checked by `parse_job_spec`, so a bad one is a 400 naming it.
    retry: Any = None
    runAt: Any = None  # noqa: N815
    delaySeconds: Any = None  # noqa: N815
    concurrencyKey: Any = None  # noqa: N815
    concurrencyLimit: Any = None  # noqa: N815


class Dispatched(BaseModel):
    id: str
    status: Literal["dispatched", "scheduled"]  # scheduled: a delayed job (runAt)
    traceId: str | None = None  # noqa: N815


async def answer_dispatch(
    ctx: ApiContext, body: DispatchRequest, header_key: str | None
) -> JSONResponse:
    """Dispatch the job of a valid body: 202 once it is recorded and queued."""
    try:
        doc = with_header_key(body.model_dump(exclude_none=True), header_key)
        spec = parse_job_spec(doc)
    except FieldError as exc:
        return error(400, str(exc), field=exc.field)
    if spec.idempotency_key is not None:
        return await dispatch_with_key(ctx, spec)
    try:
        done = await ctx.dispatcher.dispatch(spec)
    except QueueFull as exc:
        return error(503, str(exc))
    except DispatchFailed as exc:
        return error(503, f"the job could not be queued: {exc}", id=exc.job_id)
    ctx.wrote(done.seq)
    return JSONResponse(
        {"id": done.job_id, "status": done.status, "traceId": done.trace_id}, status_code=202
    )


class FastDispatch:
    """ASGI middleware: a POST /api/jobs with a valid body answered here (see the module)."""

    def __init__(self, app: ASGIApp, ctx: ApiContext, route: APIRoute | None = None) -> None:
        self.app = app
        self.ctx = ctx
        self.route = route  # what `Traced` counts the request under, as the router would

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        body = await _whole_body(receive)
        if body is None:
            return  # the client went away: nothing to answer
        try:
            request = DispatchRequest.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)
            return
        if self.route is not None:
            scope["route"] = self.route
        header_key = Headers(scope=scope).get(HEADER)
        try:
            answer = await answer_dispatch(self.ctx, request, header_key)
        except Exception as exc:  # as the app's exception handlers answer them
            refused = unavailable_answer(exc, PATH)
            if refused is None:
                raise
            answer = refused
        await answer(scope, receive, send)


async def _whole_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body again, whole, for the route; then whatever comes (a disconnect)."""
    whole: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return whole.pop() if whole else await receive()

    return replayed


def dispatch_route(routes: list[Any]) -> APIRoute:
    """The FastAPI route of POST /api/jobs among `routes`."""
    for route in routes:
        if isinstance(route, APIRoute) and route.path == PATH and "POST" in (route.methods or ()):
            return route
    raise LookupError(f"no POST {PATH} route among {len(routes)}")
