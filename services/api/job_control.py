"""Job control routes (DESIGN §11): batch dispatch, and dispatch with an idempotency key.

Batch: every spec is validated before anything is written, so a bad one anywhere answers 400
naming it (`jobs[3].payload.command`) and nothing is dispatched.

Idempotency: the key comes in the body (`idempotencyKey`) or as an `Idempotency-Key` header
(both: they must agree). The first request answers 202 as usual; a repeat within the TTL
answers 200 with the first job's row (header `Idempotent-Replayed: true`); the same key with a
different job answers 422 naming the first job, as the IETF Idempotency-Key draft does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from domain.errors import FieldError
from domain.queue import QueueFull
from domain.specs import AgentJob, CommandJob, HttpJob, parse_job_spec
from projections import queries
from services.api.context import ApiContext, ctx_of, error
from services.brain.batch import MAX_BATCH
from services.brain.dispatcher import DispatchFailed
from services.brain.idempotency import KeyReused

router = APIRouter()
HEADER = "Idempotency-Key"
JobSpec = AgentJob | CommandJob | HttpJob


class BatchDispatched(BaseModel):
    ids: list[str]
    traceId: str | None = None  # noqa: N815


def with_header_key(doc: dict[str, Any], header: str | None) -> dict[str, Any]:
    """The body with the `Idempotency-Key` header's key in it; `FieldError` when the header
    and the body name two different keys."""
    if header is None:
        return doc
    body_key = doc.get("idempotencyKey")
    if body_key is not None and body_key != header:
        raise FieldError(HEADER, f"is {header!r} but the body's idempotencyKey is {body_key!r}")
    return {**doc, "idempotencyKey": header}


def parse_batch(body: Any) -> list[JobSpec]:
    """Every job of `{jobs: [...]}` validated; `FieldError` naming the first bad one by its
    index (`jobs[3].payload.command`)."""
    if not isinstance(body, dict):
        raise FieldError("body", "must be a JSON object {jobs: [...]}")
    jobs = body.get("jobs")
    if not isinstance(jobs, list):
        raise FieldError("jobs", "must be a list of job specs")
    if not 1 <= len(jobs) <= MAX_BATCH:
        raise FieldError("jobs", f"must hold 1 to {MAX_BATCH} jobs, not {len(jobs)}")
    specs = []
    for n, doc in enumerate(jobs):
        try:
            spec = parse_job_spec(doc)
        except FieldError as exc:
            field = f"jobs[{n}]" if exc.field == "body" else f"jobs[{n}].{exc.field}"
            raise FieldError(field, exc.reason) from None
        if spec.idempotency_key is not None:
            # One key answers one job; a batch's jobs are made together, so a key per job
            # would make half a batch a repeat. Keys go with single dispatches.
            raise FieldError(f"jobs[{n}].idempotencyKey", "is not taken in a batch")
        specs.append(spec)
    return specs


@router.post("/api/jobs/batch", status_code=202, response_model=BatchDispatched)
async def dispatch_batch(request: Request, body: Any = Body(...)) -> Any:  # noqa: B008
    """Dispatch up to 1,000 jobs: 202 `{ids}` in their order; a bad spec anywhere → 400
    naming its index and field, nothing dispatched; 503 when the queue has no room for all
    (nothing dispatched) or when some could not be recorded or queued (`failed` names them;
    the others run)."""
    ctx = ctx_of(request)
    if request.headers.get(HEADER) is not None:  # refused, not ignored: no silent duplicates
        return error(400, f"{HEADER}: is not taken by the batch endpoint", field=HEADER)
    try:
        specs = parse_batch(body)
    except FieldError as exc:
        return error(400, str(exc), field=exc.field)
    try:
        done = await ctx.dispatcher.batches.dispatch(specs)
    except QueueFull as exc:
        return error(503, f"{exc}; nothing of the batch was dispatched")
    ctx.wrote(done.seq)
    if done.failed:
        failed = [{"index": n, "id": done.ids[n], "error": why} for n, why in done.failed.items()]
        return error(503, f"{len(failed)} of {len(specs)} jobs are not running", ids=done.ids,
                     failed=failed)  # fmt: skip
    return JSONResponse({"ids": done.ids, "traceId": done.trace_id}, status_code=202)


async def dispatch_with_key(ctx: ApiContext, spec: JobSpec) -> JSONResponse:
    """POST /api/jobs for a spec with an idempotency key."""
    key = spec.idempotency_key
    if ctx.idempotent is None or key is None:
        return error(503, "idempotency keys are not available on this API")
    try:
        answer = await ctx.idempotent.dispatch(spec, key)
    except KeyReused as exc:
        return error(422, str(exc), field="idempotencyKey", id=exc.job_id)
    except QueueFull as exc:
        return error(503, str(exc))
    except DispatchFailed as exc:
        return error(503, f"the job could not be queued: {exc}", id=exc.job_id)
    done = answer.dispatched
    ctx.wrote(done.seq)
    if answer.created:
        return JSONResponse(
            {"id": done.job_id, "status": "dispatched", "traceId": done.trace_id}, status_code=202
        )
    return JSONResponse(await _first_job(ctx, done.job_id), headers={"Idempotent-Replayed": "true"})


async def _first_job(ctx: ApiContext, job_id: str) -> dict[str, Any]:
    """The first job's read-model row; its id and status from the log while the read model
    has not caught up with it."""
    db = await ctx.read_model.db()
    doc = await queries.get_job(db, job_id)
    if doc is None and await ctx.caught_up():
        doc = await queries.get_job(db, job_id)
    if doc is None:
        state, _ = await ctx.dispatcher.executor.current("job", job_id)
        doc = {"id": job_id, "status": state.status}
    return doc
