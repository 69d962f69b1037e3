"""Queue routes (DESIGN §11): its state and lanes, pause and resume."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from domain.queue import QueueUnavailable
from services.api.context import ctx_of, error
from services.brain.queue_control import QueueControl

router = APIRouter()
LIMITS = {"by": 200, "reason": 2000}


def _control(request: Request) -> QueueControl:
    ctx = ctx_of(request)
    return QueueControl(ctx.dispatcher.executor, ctx.queue)


@router.get("/api/queue")
async def queue_state(request: Request) -> Any:
    """`{state, paused, by, reason, since, lanes: {high|normal|low: {queued, inFlight,
    paused}}}`."""
    return await _control(request).describe()


@router.post("/api/queue/pause", status_code=202)
async def pause(request: Request) -> Any:
    """Workers take nothing new until resumed; running jobs finish. Pausing a paused queue
    answers 202 too, with `changed: false`. Body (optional): `{by?, reason?}`."""
    return await _change(request, pause=True)


@router.post("/api/queue/resume", status_code=202)
async def resume(request: Request) -> Any:
    """Workers take jobs again. Body (optional): `{by?, reason?}`."""
    return await _change(request, pause=False)


async def _change(request: Request, *, pause: bool) -> Any:
    body = await request.body()
    try:
        doc = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        return error(400, "body: not valid JSON", field="body")
    if not isinstance(doc, dict):
        return error(400, "body: must be a JSON object", field="body")
    for name, limit in LIMITS.items():
        value = doc.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            return error(400, f"{name}: must be a string of at most {limit} characters",
                         field=name)  # fmt: skip
    control = _control(request)
    by, reason = doc.get("by") or "api", doc.get("reason")
    try:
        done = await (control.pause(by, reason) if pause else control.resume(by, reason))
    except QueueUnavailable as exc:
        return error(503, f"the queue could not be {'paused' if pause else 'resumed'}: {exc}")
    ctx_of(request).wrote(done.seq)
    state = "paused" if pause else "running"
    return JSONResponse({"state": state, "changed": done.changed, "seq": done.seq}, 202)
