"""Routes for an agent job's control (DESIGN §10): approve or deny a waiting tool call, fork a
conversation from a recorded step, rerun any job."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from domain.errors import FieldError
from domain.ids import InvalidId, check_id
from domain.queue import QueueFull
from services.api.context import ctx_of, error
from services.brain.approvals import NoSuchJob, NotWaiting
from services.brain.dispatcher import Dispatched, DispatchFailed, JobNotFound
from services.brain.forks import CannotCopy, Forks

router = APIRouter()
JobId = Annotated[str, Field(min_length=1, max_length=128)]


class ApproveRequest(BaseModel):
    """The answer to the tool call a job waits for (`toolUseId` left out: the one it waits
    for)."""

    model_config = ConfigDict(extra="ignore")
    toolUseId: str | None = Field(default=None, min_length=1, max_length=256)  # noqa: N815
    approve: bool
    note: str | None = Field(default=None, max_length=2000)


class ForkRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    fromStep: int = Field(ge=1)  # noqa: N815
    model: str | None = Field(default=None, min_length=1, max_length=200)
    prompt: str | None = Field(default=None, min_length=1, max_length=10_000)
    system: str | None = Field(default=None, max_length=10_000)


class Answered(BaseModel):
    id: str
    status: str
    toolUseId: str  # noqa: N815
    approved: bool
    queued: bool
    seq: int


class Started(BaseModel):
    id: str
    status: str
    forkOf: dict[str, Any] | None = None  # noqa: N815
    rerunOf: str | None = None  # noqa: N815


def _bad_id(job_id: str) -> JSONResponse | None:
    try:
        check_id(job_id, "id")
    except InvalidId:
        return error(404, f"no job {job_id!r}")
    return None


@router.post("/api/jobs/{job_id}/approve", status_code=202, response_model=Answered)
async def approve(job_id: JobId, body: ApproveRequest, request: Request) -> Any:
    """Approve or deny the tool call a `waiting` agent job asked about; the job is queued
    again and resumed. 409 when the job is not waiting for it."""
    if (bad := _bad_id(job_id)) is not None:
        return bad
    ctx = ctx_of(request)
    approvals = ctx.dispatcher.approvals
    try:
        use = body.toolUseId or await approvals.awaited(job_id) or ""
        done = await approvals.answer(job_id, use, body.approve, body.note, by="api")
    except NoSuchJob:
        return error(404, f"no job {job_id!r}")
    except NotWaiting as exc:
        return error(409, str(exc))
    ctx.wrote(done.seq)
    answer = {"id": job_id, "status": "dispatched", "toolUseId": use, "approved": body.approve,
              "queued": done.queued, "seq": done.seq}  # fmt: skip
    return JSONResponse(answer, status_code=202)


@router.post("/api/jobs/{job_id}/fork", status_code=202, response_model=Started)
async def fork(job_id: JobId, body: ForkRequest, request: Request) -> Any:
    """A new agent job continuing the source's conversation after step `fromStep`."""
    if (bad := _bad_id(job_id)) is not None:
        return bad
    changes = {"model": body.model, "prompt": body.prompt, "system": body.system}
    forks = Forks(ctx_of(request).dispatcher)
    origin = {"forkOf": {"jobId": job_id, "step": body.fromStep}}
    return await _start(request, job_id, forks.fork(job_id, body.fromStep, changes), origin)


@router.post("/api/jobs/{job_id}/rerun", status_code=202, response_model=Started)
async def rerun(job_id: JobId, request: Request) -> Any:
    """A new job with the same spec."""
    if (bad := _bad_id(job_id)) is not None:
        return bad
    starting = Forks(ctx_of(request).dispatcher).rerun(job_id)
    return await _start(request, job_id, starting, {"rerunOf": job_id})


async def _start(
    request: Request, source: str, starting: Awaitable[Dispatched], origin: dict[str, Any]
) -> Any:
    try:
        done = await starting
    except JobNotFound:
        return error(404, f"no job {source!r}")
    except CannotCopy as exc:
        return error(409, str(exc))
    except FieldError as exc:
        return error(400, str(exc), field=exc.field)
    except QueueFull as exc:
        return error(503, str(exc))
    except DispatchFailed as exc:
        return error(503, f"the job could not be queued: {exc}", id=exc.job_id)
    ctx_of(request).wrote(done.seq)
    answer = {"id": done.job_id, "status": "dispatched", **origin}
    return JSONResponse(answer, status_code=202)
