"""`GET /api/usage`: tokens and cost of agent jobs grouped by model, day or type (DESIGN §10)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from projections.usage import GroupBy, UsageFilter, usage, usage_day, usage_total
from services.api.context import ctx_of, error

router = APIRouter()


class UsageRow(BaseModel):
    key: str = Field(description="the model, the UTC day (YYYY-MM-DD) or the job type")
    jobs: int = Field(description="distinct jobs")
    inputTokens: int  # noqa: N815 - JSON names
    outputTokens: int  # noqa: N815
    cacheReadTokens: int  # noqa: N815
    cacheWriteTokens: int  # noqa: N815
    calls: int = Field(description="model calls")
    costUsd: float  # noqa: N815


class Usage(BaseModel):
    rows: list[UsageRow]
    total: UsageRow


@router.get("/api/usage", response_model=Usage)
async def get_usage(
    request: Request,
    groupBy: GroupBy = "model",  # noqa: N803 - the query parameter's name
    since: Annotated[
        str | None, Query(description="a date or ISO-8601 time (UTC day), inclusive")
    ] = None,
    until: Annotated[
        str | None, Query(description="a date or ISO-8601 time (UTC day), inclusive")
    ] = None,
) -> Any:
    """Model calls of every job, summed per model, UTC day of the call or job type."""
    try:
        first, last = usage_day(since, "since"), usage_day(until, "until")
    except ValueError as exc:
        name = str(exc).split(":", 1)[0]
        return error(400, str(exc), field=name)
    if first and last and first > last:
        return error(400, "until: is before since", field="until")
    ctx = ctx_of(request)
    await ctx.caught_up()
    db = await ctx.read_model.db()
    f = UsageFilter(groupBy, first, last)
    return {"rows": await usage(db, f), "total": await usage_total(db, f)}
