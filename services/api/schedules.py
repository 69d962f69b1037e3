"""Schedule routes (DESIGN §11): create, list, pause, resume, delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from domain.errors import FieldError
from domain.ids import InvalidId, check_id
from domain.schedules import schedule_request
from services.api.context import ctx_of, error
from services.brain.scheduler import Scheduler, ScheduleRefused, schedule_document

router = APIRouter()
Name = Annotated[str, Field(min_length=1, max_length=128)]


def _scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler | None = ctx_of(request).scheduler
    if scheduler is None:
        raise ScheduleRefused(503, "schedules are kept by the Brain; this API has none")
    return scheduler


def _answer(name: str, state: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(schedule_document(name, state, datetime.now(UTC)), status_code=status)


@router.post("/api/schedules", status_code=201)
async def create(request: Request, body: Annotated[Any, Body()] = None) -> Any:
    """`{name, cron | everySeconds, timezone?, job: {type, payload, ...}}`: 201 with the
    schedule; 400 naming a bad field; 409 when the name is taken."""
    try:
        name, fields = schedule_request(body)
        state = await _scheduler(request).create(name, fields)
    except FieldError as exc:
        return error(400, str(exc), field=exc.field)
    except ScheduleRefused as exc:
        reason = f"schedule {body.get('name')!r} exists already" if exc.status == 409 else str(exc)
        return error(exc.status, reason)
    return _answer(name, state, 201)


@router.get("/api/schedules")
async def list_schedules(request: Request) -> Any:
    try:
        scheduler = _scheduler(request)
    except ScheduleRefused as exc:
        return error(exc.status, str(exc))
    now = datetime.now(UTC)
    docs = [schedule_document(n, s, now) for n, s in sorted(scheduler.schedules.items())]
    return {"schedules": docs}


async def _change(request: Request, name: str, verb: str) -> Any:
    try:
        check_id(name, "name")
        scheduler = _scheduler(request)
        state = await getattr(scheduler, verb)(name)
    except InvalidId:
        return error(404, f"no schedule {name!r}")
    except ScheduleRefused as exc:
        reason = f"no schedule {name!r}" if exc.status == 404 else str(exc)
        return error(exc.status, reason)
    return _answer(name, state)


@router.post("/api/schedules/{name}/pause")
async def pause(name: Name, request: Request) -> Any:
    return await _change(request, name, "pause")


@router.post("/api/schedules/{name}/resume")
async def resume(name: Name, request: Request) -> Any:
    return await _change(request, name, "resume")


@router.delete("/api/schedules/{name}")
async def delete(name: Name, request: Request) -> Any:
    return await _change(request, name, "delete")
