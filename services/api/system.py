"""System routes: readiness, Brain state, metrics, extensions, health, handoff, tasks."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from domain.tasks import TaskRequest
from projections import queries
from services.api.context import ApiContext, Document, ctx_of

router = APIRouter()
_ctx = ctx_of


class Ping(BaseModel):
    status: Literal["ok", "not_ready"]
    service: str
    state: str
    mode: str
    timestamp: str


class BrainState(BaseModel):
    state: str
    version: str
    instance: str
    uptime: float


class Extension(Document):
    id: str
    name: str | None
    version: str | None
    status: str
    online: bool
    tools: list[Any]
    mcp_url: str | None = None
    changed_at: str | None = None


class Extensions(BaseModel):
    extensions: list[Extension]


class Service(Document):
    id: str
    service: str
    instance: str
    status: str
    since: str | None = None
    last_seen: str | None = None


class Check(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["healthy", "unhealthy"]


class Health(BaseModel):
    services: list[Service]
    checks: dict[str, Check]
    live: dict[str, dict[str, Any]]


class BrainRow(Document):
    instance: str
    status: str
    generation: int | None = None


class HandoffRow(Document):
    id: str
    status: str
    from_instance: str | None = None
    to_instance: str | None = None
    generation: int | None = None


class Handoff(BaseModel):
    active: BrainRow | None
    generation: int | None
    inProgress: HandoffRow | None  # noqa: N815 - JSON name
    brains: list[BrainRow]
    history: list[HandoffRow]


@router.get("/ping", response_model=Ping)
async def ping(request: Request) -> Any:
    """Readiness and liveness: 200 when the Brain is active, 503 otherwise. No auth."""
    brain = _ctx(request).brain
    doc = {
        "status": "ok" if brain.accepting else "not_ready",
        "service": "api" if brain.mode == "read-only" else "brain",
        "state": brain.state,
        "mode": brain.mode,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    return JSONResponse(doc, status_code=200 if brain.accepting else 503)


@router.get("/brain/state", response_model=BrainState)
async def brain_state(request: Request) -> Any:
    """The Brain's blue-green state, version and uptime. No auth."""
    brain = _ctx(request).brain
    uptime = asyncio.get_event_loop().time() - brain.started
    return {
        "state": brain.state,
        "version": brain.version,
        "instance": brain.instance,
        "uptime": round(uptime, 3),
    }


@router.get("/api/extensions", response_model=Extensions)
async def extensions(request: Request) -> Any:
    """Extensions with their status and tools (read model)."""
    return {"extensions": await queries.extensions(await _ctx(request).read_model.db())}


@router.get("/api/system/handoff", response_model=Handoff)
async def handoff(request: Request) -> Any:
    """The active Brain, its fencing generation, the handoff in progress and the history."""
    return await queries.handoff_state(await _ctx(request).read_model.db())


@router.get("/api/system/health", response_model=Health)
async def health(request: Request) -> Any:
    """Each service with its state and last seen, plus live NATS and read-model checks."""
    ctx = _ctx(request)
    checks: dict[str, Any] = {"nats": _nats_check(ctx)}
    started = time.monotonic()
    try:
        db = await ctx.read_model.db()
        applied = await ctx.read_model.applied()
        head = await ctx.store.head_seq()
        checks["readModel"] = {
            "status": "healthy",
            "applied": applied,
            "lag": max(0, head - applied),
            "ms": round((time.monotonic() - started) * 1000, 1),
        }
        services = await queries.services(db)
    except Exception as exc:  # a health page reports failures, it does not fail
        checks["readModel"] = {"status": "unhealthy", "detail": str(exc)}
        services = []
    live = await ctx.health() if ctx.health is not None else {}
    for svc in services:
        seen = live.get(svc["id"])
        if seen:
            svc["lastSeen"] = seen.get("lastSeen")
            svc["details"] = seen.get("details")
    return {"services": services, "checks": checks, "live": live}


def _nats_check(ctx: ApiContext) -> dict[str, Any]:
    if ctx.nats_check is None:
        return {"status": "unknown"}
    return ctx.nats_check()


class LaunchedTask(BaseModel):
    id: str
    status: Literal["launched"]


class TaskCancelRequest(BaseModel):
    """Optional body of `POST /api/tasks/{id}/cancel`."""

    model_config = ConfigDict(extra="ignore")
    reason: str | None = Field(default=None, min_length=1, max_length=500)


class TaskRunnerStop(BaseModel):
    stopped: bool
    launcher: str | None = None
    detail: str = ""


class CancelledTask(BaseModel):
    id: str
    status: Literal["cancelled"]
    runner: TaskRunnerStop


TaskId = Annotated[str, Path(min_length=1, max_length=128)]


@router.get("/api/tasks")
async def list_tasks(request: Request, limit: int = 100) -> Any:
    """Task pods, newest first."""
    if not 1 <= limit <= queries.MAX_LIMIT:
        return JSONResponse({"error": f"limit: must be 1..{queries.MAX_LIMIT}"}, status_code=400)
    return {"tasks": await queries.tasks(await _ctx(request).read_model.db(), limit)}


@router.get("/api/tasks/{task_id}")
async def get_task(task_id: TaskId, request: Request) -> Any:
    """One task pod."""
    doc = await queries.task(await _ctx(request).read_model.db(), task_id)
    return (
        doc if doc is not None else JSONResponse({"error": f"no task {task_id!r}"}, status_code=404)
    )


@router.post("/api/tasks", status_code=202, response_model=LaunchedTask)
async def launch_task(body: TaskRequest, request: Request) -> Any:
    """Launch a task pod `{goal, mode: agent|script, toolbox?, timeoutSeconds <= 1800}`; 400
    naming the field for a bad body, 503 when no launcher takes it."""
    ctx = _ctx(request)
    if ctx.launch_task is None:
        return JSONResponse({"error": "task pods are not enabled on this Brain"}, status_code=503)
    status, doc = await ctx.launch_task(body.model_dump(by_alias=True, exclude_none=True))
    return JSONResponse(doc, status_code=status)


@router.post("/api/tasks/{task_id}/cancel", status_code=202, response_model=CancelledTask)
async def cancel_task(
    task_id: TaskId, request: Request, body: TaskCancelRequest | None = None
) -> Any:
    """Cancel a task: `TaskCancelled` is recorded and its runner stopped (the local process
    tree killed, the Kubernetes Job deleted); 409 when it has already finished, 404 unknown."""
    ctx = _ctx(request)
    if ctx.launch_task is None:
        return JSONResponse({"error": "task pods are not enabled on this Brain"}, status_code=503)
    reason = (body.reason if body is not None else None) or "cancelled through the API"
    if ctx.cancel_task is None:
        return JSONResponse({"error": "task pods are not enabled on this Brain"}, status_code=503)
    status, doc = await ctx.cancel_task(task_id, reason)  # the Brain's task service
    return JSONResponse(doc, status_code=status)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Any:
    """Prometheus text exposition."""
    from services.api.metrics import render  # noqa: PLC0415 - only on scrape

    return PlainTextResponse(
        await render(_ctx(request), request.app.state.requests),
        media_type="text/plain; version=0.0.4",
    )
