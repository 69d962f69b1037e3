"""Job routes: dispatch, list, read, history, live stream, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from adapters.nats.job_queue import QueueFull
from domain.errors import FieldError
from domain.events import to_document
from domain.ids import InvalidId, check_id
from domain.specs import parse_job_spec
from projections import queries
from projections.pit import jobs_as_of, seq_at
from services.api import sse
from services.api.context import ApiContext
from services.brain.dispatcher import DispatchFailed, JobAlreadyFinished, JobNotFound

router = APIRouter()
MAX_SEQ = 2**63 - 1  # SQLite's largest integer
JobId = Annotated[str, Field(min_length=1, max_length=128)]
Status = Literal["dispatched", "received", "running", "completed", "failed", "cancelled"]


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def _error(status: int, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status)


class DispatchRequest(BaseModel):
    """A job to run: `agent` {prompt, model?, maxTokens?, system?}, `command` {command},
    or `http` {url, method?, headers?, json?, timeoutSeconds?}."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["agent", "command", "http"]
    payload: dict[str, Any]
    timeoutSeconds: int | None = Field(default=None, ge=1, le=86_400)  # noqa: N815 - JSON name


class Dispatched(BaseModel):
    id: str
    status: Literal["dispatched"]
    traceId: str | None = None  # noqa: N815


class JobPage(BaseModel):
    jobs: list[dict[str, Any]]
    next: int | None
    applied: int | None = None
    asOf: int | None = None  # noqa: N815


class ErrorBody(BaseModel):
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 404: {"model": ErrorBody},
    409: {"model": ErrorBody}, 413: {"model": ErrorBody}, 503: {"model": ErrorBody},
}  # fmt: skip


def _job_id(value: str) -> str | None:
    try:
        return check_id(value, "id")
    except InvalidId:
        return None


@router.post("/api/jobs", status_code=202, response_model=Dispatched, responses=ERRORS)
async def dispatch(body: DispatchRequest, request: Request) -> Any:
    """Dispatch a job; answers once the job is in the read model (read-your-writes)."""
    ctx = _ctx(request)
    try:
        spec = parse_job_spec(body.model_dump(exclude_none=True))
    except FieldError as exc:
        return _error(400, str(exc), field=exc.field)
    try:
        done = await ctx.dispatcher.dispatch(spec)
    except QueueFull as exc:
        return _error(503, str(exc))
    except DispatchFailed as exc:
        return _error(503, f"the job could not be queued: {exc}", id=exc.job_id)
    if ctx.wait_for is not None:
        await ctx.wait_for(done.seq, 2.0)
    return JSONResponse(
        {"id": done.job_id, "status": "dispatched", "traceId": done.trace_id}, status_code=202
    )


@router.get("/api/jobs", response_model=JobPage, responses=ERRORS)
async def list_jobs(
    request: Request,
    status: Status | None = None,
    type: Literal["agent", "command", "http"] | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    asOf: Annotated[str | None, Query(description="a stream sequence or an ISO-8601 time")] = None,  # noqa: N803
) -> Any:
    """Jobs, newest first, keyset-paginated; `asOf` shows the jobs as they were then."""
    db = await _ctx(request).read_model.db()
    if asOf is not None:
        return await _as_of(db, asOf, status, type, limit)
    page = await queries.list_jobs(db, queries.JobFilter(status, type, limit, cursor))
    # `applied`: the stream sequence this page reflects, to join it to the live stream.
    return {
        "jobs": page.jobs,
        "next": page.next,
        "applied": await _ctx(request).read_model.applied(),
    }


async def _as_of(db: Any, as_of: str, status: str | None, job_type: str | None, limit: int) -> Any:
    if as_of.isdigit():
        seq = min(int(as_of), MAX_SEQ)  # past the end of the log is "as of now"
    else:
        try:
            seq = await seq_at(db, datetime.fromisoformat(as_of))
        except ValueError:
            return _error(400, "asOf: not a sequence number or an ISO-8601 time", field="asOf")
    rows = sorted((await jobs_as_of(db, seq)).values(), key=lambda r: -r["dispatched_seq"])
    picked = [r for r in rows if status in (None, r["status"]) and job_type in (None, r["type"])]
    return {"jobs": [queries.job_document(r) for r in picked[:limit]], "next": None, "asOf": seq}


@router.get("/api/jobs/{job_id}", responses=ERRORS)
async def get_job(job_id: JobId, request: Request) -> Any:
    """The job's read-model row."""
    if _job_id(job_id) is None:
        return _error(404, f"no job {job_id!r}")
    doc = await queries.get_job(await _ctx(request).read_model.db(), job_id)
    return doc if doc is not None else _error(404, f"no job {job_id!r}")


@router.get("/api/jobs/{job_id}/history", responses=ERRORS)
async def history(job_id: JobId, request: Request) -> Any:
    """Every event of the job from the event log, rejected transitions included."""
    if _job_id(job_id) is None:
        return _error(404, f"no job {job_id!r}")
    loaded = await _ctx(request).store.load("job", job_id)
    if not loaded.exists:
        return _error(404, f"no job {job_id!r}")
    return {
        "id": job_id,
        "status": loaded.state.status,
        "events": [{"seq": e.seq, **to_document(e.envelope)} for e in loaded.events],
        "unreadable": [{"seq": b.seq, "error": b.error} for b in loaded.bad],
    }


@router.get("/api/jobs/{job_id}/stream", responses=ERRORS)
async def stream(job_id: JobId, request: Request) -> Any:
    """Server-Sent Events: the job's history, then live events; closes after a terminal state."""
    if _job_id(job_id) is None:
        return _error(404, f"no job {job_id!r}")
    ctx = _ctx(request)
    opened = await sse.open_job_stream(ctx, job_id, _last_event_id(request))
    if opened is None:
        return _error(404, f"no job {job_id!r}")
    return StreamingResponse(opened, media_type="text/event-stream", headers=sse.HEADERS)


@router.get("/api/events/stream", responses=ERRORS)
async def all_events(
    request: Request,
    aggregate: Literal["job", "task", "extension", "service", "brain", "handoff"] | None = None,
) -> Any:
    """Server-Sent Events of every new event (optionally of one aggregate kind)."""
    events = sse.follow_all(_ctx(request), aggregate, _last_event_id(request))
    return StreamingResponse(events, media_type="text/event-stream", headers=sse.HEADERS)


def _last_event_id(request: Request) -> int:
    value = request.headers.get("last-event-id", "")
    return int(value) if value.isdigit() else 0


@router.post("/api/jobs/{job_id}/cancel", status_code=202, responses=ERRORS)
async def cancel(job_id: JobId, request: Request) -> Any:
    """Ask for the job to be cancelled; 409 when it has already finished."""
    if _job_id(job_id) is None:
        return _error(404, f"no job {job_id!r}")
    try:
        seq = await _ctx(request).dispatcher.cancel(job_id, "cancelled through the API")
    except JobNotFound:
        return _error(404, f"no job {job_id!r}")
    except JobAlreadyFinished as exc:
        return _error(409, str(exc))
    return JSONResponse({"id": job_id, "status": "cancel_requested", "seq": seq}, status_code=202)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
