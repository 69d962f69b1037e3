"""Job routes: dispatch, list, read, history, live streams, cancel, and the event search."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from domain.errors import FieldError
from domain.events import (
    JOB_EVENTS,
    TIMING_EVENTS,
    TransitionRejected,
    format_time,
    to_document,
)
from domain.ids import InvalidId, check_id
from domain.labels import parse_filters
from projections import queries
from projections.jobs import FoldError, JobRow, fold_job
from projections.pit import jobs_as_of, seq_at
from services.api import sse
from services.api.context import (
    MAX_SEQ,
    ApiContext,
    Document,
    EventDoc,
    ctx_of,
    error,
    parse_count,
    parse_time,
)
from services.api.dispatch_route import Dispatched, DispatchRequest, answer_dispatch
from services.api.job_control import HEADER
from services.brain.dispatcher import JobAlreadyFinished, JobNotFound

router = APIRouter()
JobId = Annotated[str, Field(min_length=1, max_length=128)]
Status = Literal[
    "scheduled", "dispatched", "received", "running", "waiting", "retrying", "completed",
    "failed", "cancelled",
]  # fmt: skip
JOB_EVENT_TYPES = (
    *(e.type_name() for e in (*JOB_EVENTS, *TIMING_EVENTS)),
    TransitionRejected.type_name(),
)
SSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "Server-Sent Events", "content": {"text/event-stream": {}}}
}


class Job(Document):
    """A job's read-model row."""

    id: str
    type: str | None
    status: Status
    attempt: int
    worker_id: str | None
    progress: str | None
    cancel_requested: bool
    result: Any
    error: str | None
    failure_reason: str | None
    timeout_seconds: int | None
    payload: dict[str, Any] | None
    warnings: list[str] | None
    trace_id: str | None
    dispatched_seq: int
    dispatched_at: str | None
    received_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str
    duration_ms: int | None
    rejected: int
    version: int
    last_seq: int
    input_tokens: int = Field(description="uncached input tokens of every model call")
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float = Field(description="US dollars, from the price table at each call")
    steps: int = Field(description="the last recorded agent step")
    labels: dict[str, str] | None = None
    run_at: str | None = Field(default=None, description="a delayed job's start time")
    retry_at: str | None = Field(default=None, description="when a retrying job runs again")
    retries: int = Field(default=0, description="retries scheduled so far")
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    wait_reason: str | None = Field(default=None, description="why a queued job waits")


class JobPage(BaseModel):
    jobs: list[Job]
    next: int | None
    applied: int | None = None
    asOf: int | None = None  # noqa: N815


class Unreadable(BaseModel):
    seq: int
    error: str


class History(BaseModel):
    id: str
    status: Status
    events: list[EventDoc]
    unreadable: list[Unreadable]


class CancelRequested(BaseModel):
    id: str
    status: Literal["cancel_requested"]
    seq: int


class EventPage(BaseModel):
    events: list[EventDoc]
    more: bool = Field(description="more events match than `limit`")


def _job_id(value: str) -> str | None:
    try:
        return check_id(value, "id")
    except InvalidId:
        return None


@router.post(
    "/api/jobs", status_code=202, response_model=Dispatched,
    responses={200: {"model": Job, "description": "a repeat of an idempotency key: the first job"}},
)  # fmt: skip
async def dispatch(body: DispatchRequest, request: Request) -> Any:
    """Dispatch a job; answers once it is recorded and queued. A read of it right after sees
    it (read-your-writes), from the event log while the read model has not caught up. With an
    idempotency key (`idempotencyKey` or the `Idempotency-Key` header), a repeat within the TTL
    answers 200 with the first job, and the key with another job 422."""
    # A valid body is answered before it gets here (`services.api.dispatch_route`): this
    # route documents it and answers the invalid ones, with FastAPI's validation errors.
    return await answer_dispatch(ctx_of(request), body, request.headers.get(HEADER))


@router.get("/api/jobs", response_model=JobPage, response_model_exclude_unset=True)
async def list_jobs(
    request: Request,
    status: Status | None = None,
    type: Literal["agent", "command", "http"] | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    asOf: Annotated[str | None, Query(description="a stream sequence or an ISO-8601 time")] = None,  # noqa: N803
    label: Annotated[list[str] | None, Query(description="key:value, repeatable (AND)")] = None,
) -> Any:
    """Jobs, newest first, keyset-paginated; `asOf` shows the jobs as they were then;
    `label=team:infra` (repeatable) only the jobs carrying every one of those labels."""
    try:
        labels = parse_filters(label or [])
    except FieldError as exc:
        return error(400, str(exc), field=exc.field)
    ctx = ctx_of(request)
    db = await ctx.read_model.db()
    if asOf is not None:
        return await _as_of(db, asOf, status, type, limit, labels)
    await ctx.caught_up()  # a page shows every job this API dispatched before it
    page = await queries.list_jobs(db, queries.JobFilter(status, type, limit, cursor, labels))
    # `applied`: the stream sequence this page reflects, to join it to the live stream.
    return {
        "jobs": page.jobs,
        "next": page.next,
        "applied": await ctx_of(request).read_model.applied(),
    }


async def _as_of(
    db: Any, as_of: str, status: str | None, job_type: str | None, limit: int,
    labels: tuple[tuple[str, str], ...] = (),
) -> Any:  # fmt: skip
    seq = parse_count(as_of)  # past the end of the log is "as of now"
    if seq is None:
        moment = parse_time(as_of)
        if moment is None:
            return error(400, "asOf: not a sequence number or an ISO-8601 time", field="asOf")
        seq = await seq_at(db, moment)
    rows = sorted((await jobs_as_of(db, seq)).values(), key=lambda r: -r["dispatched_seq"])
    picked = [
        r for r in rows
        if status in (None, r["status"]) and job_type in (None, r["type"])
        and queries.has_labels(r, labels)
    ]  # fmt: skip
    return {"jobs": [queries.job_document(r) for r in picked[:limit]], "next": None, "asOf": seq}


@router.get("/api/jobs/{job_id}", response_model=Job)
async def get_job(job_id: JobId, request: Request) -> Any:
    """The job's read-model row. A job the read model does not hold yet (just dispatched, the
    projector a batch behind, or stalled) is folded from the event log: the row as the
    projector will write it, at once (waiting for the projector would cost its batch window
    and its write, ~5 ms, where reading the job's few events costs one round trip)."""
    if _job_id(job_id) is None:
        return error(404, f"no job {job_id!r}")
    ctx = ctx_of(request)
    db = await ctx.read_model.db()
    doc = await queries.get_job(db, job_id)
    if doc is None:
        doc = await _job_from_log(ctx, job_id)
    return doc if doc is not None else error(404, f"no job {job_id!r}")


async def _job_from_log(ctx: ApiContext, job_id: str) -> dict[str, Any] | None:
    """The job's row as the projector will write it, folded from its events. What it shows
    counts as written by this API: a page read after it waits until it shows as much."""
    loaded = await ctx.store.load("job", job_id)
    row: JobRow | None = None
    for item in loaded.events:
        try:
            row = fold_job(row, item.envelope, item.seq).row
        except FoldError:
            return None  # what the projector sends to dead letters: not a job to show
    if row is None:
        return None
    ctx.wrote(loaded.events[-1].seq)
    return queries.job_document(row)


@router.get("/api/jobs/{job_id}/history", response_model=History, response_model_exclude_unset=True)
async def history(job_id: JobId, request: Request) -> Any:
    """Every event of the job from the event log, rejected transitions included."""
    if _job_id(job_id) is None:
        return error(404, f"no job {job_id!r}")
    loaded = await ctx_of(request).store.load("job", job_id)
    if not loaded.exists:
        return error(404, f"no job {job_id!r}")
    return {
        "id": job_id,
        "status": loaded.state.status,
        "events": [{"seq": e.seq, **to_document(e.envelope)} for e in loaded.events],
        "unreadable": [{"seq": b.seq, "error": b.error} for b in loaded.bad],
    }


@router.get("/api/jobs/{job_id}/stream", response_class=StreamingResponse, responses=SSE)
async def stream(job_id: JobId, request: Request) -> Any:
    """Server-Sent Events: the job's history, then live events; closes after a terminal state.
    `Last-Event-ID` (an event version) resumes after that event."""
    if _job_id(job_id) is None:
        return error(404, f"no job {job_id!r}")
    after = _last_event_id(request)
    if after is None:
        return _bad_last_event_id()
    opened = await sse.open_job_stream(ctx_of(request), job_id, after)
    if opened is None:
        return error(404, f"no job {job_id!r}")
    return StreamingResponse(opened, media_type="text/event-stream", headers=sse.HEADERS)


@router.get("/api/events/stream", response_class=StreamingResponse, responses=SSE)
async def all_events(
    request: Request,
    aggregate: Literal["job", "task", "extension", "service", "brain", "handoff", "schedule"]
    | None = None,
) -> Any:
    """Server-Sent Events of every new event (optionally of one aggregate kind);
    `Last-Event-ID` (a stream sequence) replays the events after it first."""
    after = _last_event_id(request)
    if after is None:
        return _bad_last_event_id()
    events = sse.follow_all(ctx_of(request), aggregate, after)
    return StreamingResponse(events, media_type="text/event-stream", headers=sse.HEADERS)


def _last_event_id(request: Request) -> int | None:
    value = request.headers.get("last-event-id", "").strip()
    return parse_count(value) if value else 0


def _bad_last_event_id() -> JSONResponse:
    return error(400, "Last-Event-ID: must be a non-negative integer", field="Last-Event-ID")


@router.post("/api/jobs/{job_id}/cancel", status_code=202, response_model=CancelRequested)
async def cancel(job_id: JobId, request: Request) -> Any:
    """Ask for the job to be cancelled; 409 when it has already finished."""
    if _job_id(job_id) is None:
        return error(404, f"no job {job_id!r}")
    try:
        seq = await ctx_of(request).dispatcher.cancel(job_id, "cancelled through the API")
    except JobNotFound:
        return error(404, f"no job {job_id!r}")
    except JobAlreadyFinished as exc:
        return error(409, str(exc))
    ctx_of(request).wrote(seq)
    return JSONResponse({"id": job_id, "status": "cancel_requested", "seq": seq}, status_code=202)


@router.get("/api/events", response_model=EventPage, response_model_exclude_unset=True)
async def search_events(
    request: Request,
    jobId: Annotated[str | None, Query(min_length=1, max_length=128)] = None,  # noqa: N803
    type: Annotated[str | None, Query(json_schema_extra={"enum": list(JOB_EVENT_TYPES)})] = None,
    workerId: Annotated[str | None, Query(min_length=1, max_length=128)] = None,  # noqa: N803
    since: Annotated[str | None, Query(description="ISO-8601, inclusive")] = None,
    until: Annotated[str | None, Query(description="ISO-8601, inclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
) -> Any:
    """Job events from the read model (rejected transitions included), oldest first."""
    try:
        found = _event_filter(jobId, type, workerId, since, until, limit + 1)
    except FieldError as exc:
        return error(400, str(exc), field=exc.field)
    ctx = ctx_of(request)
    await ctx.caught_up()
    events = await queries.search_events(await ctx.read_model.db(), found)
    return {"events": events[:limit], "more": len(events) > limit}


def _event_filter(
    job_id: str | None, kind: str | None, worker: str | None, since: str | None,
    until: str | None, limit: int,
) -> queries.EventFilter:  # fmt: skip
    if job_id is not None and _job_id(job_id) is None:
        raise FieldError("jobId", f"{job_id!r} is not a valid job id")
    if kind is not None and kind not in JOB_EVENT_TYPES:
        raise FieldError("type", f"{kind!r} is not a job event type ({', '.join(JOB_EVENT_TYPES)})")
    times = {}
    for name, text in (("since", since), ("until", until)):
        moment = parse_time(text) if text is not None else None
        if text is not None and moment is None:
            raise FieldError(name, f"{text!r} is not an ISO-8601 time")
        times[name] = format_time(moment) if moment is not None else None
    if times["since"] and times["until"] and times["since"] > times["until"]:
        raise FieldError("until", "is before since")
    return queries.EventFilter(job_id, kind, worker, times["since"], times["until"], limit)
