"""System routes: readiness, Brain state, metrics, extensions, health, handoff, tasks."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from projections import queries
from services.api.context import ApiContext

router = APIRouter()


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


@router.get("/ping")
async def ping(request: Request) -> Any:
    """Readiness and liveness: 200 when the Brain is active, 503 otherwise. No auth."""
    brain = _ctx(request).brain
    doc = {
        "status": "ok" if brain.accepting else "not_ready",
        "service": "brain",
        "state": brain.state,
        "mode": brain.mode,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    return JSONResponse(doc, status_code=200 if brain.accepting else 503)


@router.get("/brain/state")
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


@router.get("/api/extensions")
async def extensions(request: Request) -> Any:
    """Extensions with their status and tools (read model)."""
    return {"extensions": await queries.extensions(await _ctx(request).read_model.db())}


@router.get("/api/system/handoff")
async def handoff(request: Request) -> Any:
    """The active Brain, its fencing generation, the handoff in progress and the history."""
    return await queries.handoff_state(await _ctx(request).read_model.db())


@router.get("/api/system/health")
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
    connected = ctx.nc.is_connected
    detail = {"status": "healthy" if connected else "unhealthy"}
    if connected and ctx.nc.connected_url is not None:
        detail["server"] = f"{ctx.nc.connected_url.hostname}:{ctx.nc.connected_url.port}"
    return detail


@router.get("/api/tasks")
async def list_tasks(request: Request, limit: int = 100) -> Any:
    """Task pods, newest first."""
    if not 1 <= limit <= queries.MAX_LIMIT:
        return JSONResponse({"error": f"limit: must be 1..{queries.MAX_LIMIT}"}, status_code=400)
    return {"tasks": await queries.tasks(await _ctx(request).read_model.db(), limit)}


@router.get("/api/tasks/{task_id}")
async def get_task(task_id: str, request: Request) -> Any:
    """One task pod."""
    doc = await queries.task(await _ctx(request).read_model.db(), task_id)
    return (
        doc if doc is not None else JSONResponse({"error": f"no task {task_id!r}"}, status_code=404)
    )


@router.post("/api/tasks", status_code=202)
async def launch_task(request: Request) -> Any:
    """Launch a task pod `{goal, mode: agent|script, toolbox?, timeoutSeconds <= 1800}`."""
    ctx = _ctx(request)
    if ctx.launch_task is None:
        return JSONResponse({"error": "task pods are not enabled on this Brain"}, status_code=503)
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "body: not valid JSON"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "body: must be a JSON object"}, status_code=400)
    status, doc = await ctx.launch_task(body)
    return JSONResponse(doc, status_code=status)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Any:
    """Prometheus text exposition."""
    from services.api.metrics import render  # noqa: PLC0415 - only on scrape

    return PlainTextResponse(
        await render(_ctx(request), request.app.state.requests),
        media_type="text/plain; version=0.0.4",
    )
