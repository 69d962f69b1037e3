"""The agent events' part of the `jobs` projection (DESIGN §10): tokens, cost and steps on the
job row, approvals moving its status, and one usage record per model call for `job_usage`.

Pure like `fold_job`, which calls `fold_agent` for these events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple, TypedDict

from domain.events import (
    AgentApprovalDenied,
    AgentApprovalGranted,
    AgentApprovalRequested,
    AgentModelCalled,
    AgentToolCalled,
    AgentToolReturned,
    DomainEvent,
    JobBudgetExceeded,
)

AGENT_TYPES = (
    AgentModelCalled,
    AgentToolCalled,
    AgentToolReturned,
    AgentApprovalRequested,
    AgentApprovalGranted,
    AgentApprovalDenied,
    JobBudgetExceeded,
)


class AgentColumns(TypedDict):
    """The job row's usage columns (every job has them; 0 for jobs that call no model)."""

    input_tokens: int  # uncached input tokens, as the Messages API counts `input_tokens`
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    steps: int  # the last recorded step number


class UsageRecord(NamedTuple):
    """One model call's addition to `job_usage`, keyed by (job_id, model, day)."""

    job_id: str
    model: str
    day: str  # the UTC date of the call, YYYY-MM-DD
    type: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


USAGE_COLUMNS: tuple[str, ...] = (*UsageRecord._fields, "calls")
USAGE_KEY: tuple[str, ...] = ("job_id", "model", "day")


def utc_day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def fold_agent(
    row: AgentColumns, status: str, data: DomainEvent, job_id: str, job_type: str, at: datetime
) -> tuple[str, UsageRecord | None]:
    """Apply an agent event to `row` in place; returns the job's status after it and the usage
    record of a model call."""
    if isinstance(data, AgentModelCalled):
        usage = data.usage
        row["input_tokens"] += usage.input_tokens
        row["output_tokens"] += usage.output_tokens
        row["cache_read_tokens"] += usage.cache_read_tokens
        row["cache_write_tokens"] += usage.cache_write_tokens
        # Rounded at every step, so the sum is the same whatever batches the events came in.
        row["cost_usd"] = round(row["cost_usd"] + data.cost_usd, 6)
        row["steps"] = max(row["steps"], data.step)
        record = UsageRecord(
            job_id, data.model, utc_day(at), job_type, usage.input_tokens, usage.output_tokens,
            usage.cache_read_tokens, usage.cache_write_tokens, data.cost_usd,
        )  # fmt: skip
        return status, record
    if isinstance(data, AgentToolCalled | AgentToolReturned | AgentApprovalRequested):
        row["steps"] = max(row["steps"], data.step)
    if isinstance(data, AgentApprovalRequested):
        return "waiting", None
    if isinstance(data, AgentApprovalGranted | AgentApprovalDenied):
        return "dispatched", None  # answered: the job is queued again for any worker
    # JobBudgetExceeded changes nothing here: the JobFailed(budget_exceeded) after it does.
    return status, None
