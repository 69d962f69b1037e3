"""Events of an agent job's inside (DESIGN §10): its steps, approvals and budget, on the job
aggregate, so a job's conversation is in the same ordered history as its lifecycle."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from domain.events.job import JobEvent


class Usage(BaseModel):
    """Tokens of one model call, as the Messages API counts them."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True
    )

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)

    @property
    def total(self) -> int:
        return (
            self.input_tokens + self.output_tokens + self.cache_read_tokens
            + self.cache_write_tokens
        )  # fmt: skip


class AgentModelCalled(JobEvent):
    """One model call and its reply: the assistant's content blocks, usage and cost."""

    attempt: int = Field(ge=1)
    step: int = Field(ge=1)
    model: str
    stop_reason: str | None = None
    content: list[dict[str, Any]] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = Field(default=0.0, ge=0)
    duration_ms: int | None = Field(default=None, ge=0)


class AgentToolCalled(JobEvent):
    """A tool call the model asked for is about to run (its input with secrets masked)."""

    attempt: int = Field(ge=1)
    step: int = Field(ge=1)
    tool_use_id: str
    tool: str
    input: dict[str, Any] = Field(default_factory=dict)


class AgentToolReturned(JobEvent):
    """A tool call's output (capped), as the model is given it."""

    attempt: int = Field(ge=1)
    step: int = Field(ge=1)
    tool_use_id: str
    output: str
    is_error: bool = False
    duration_ms: int | None = Field(default=None, ge=0)


class AgentApprovalRequested(JobEvent):
    """A tool call waits for an operator's answer; the job is `waiting`."""

    attempt: int = Field(ge=1)
    step: int = Field(ge=1)
    tool_use_id: str
    tool: str
    input: dict[str, Any] = Field(default_factory=dict)


class AgentApprovalGranted(JobEvent):
    tool_use_id: str
    note: str | None = None
    by: str | None = None


class AgentApprovalDenied(JobEvent):
    tool_use_id: str
    note: str | None = None
    by: str | None = None


class JobBudgetExceeded(JobEvent):
    """The next model call would pass the job's budget; the job fails `budget_exceeded`."""

    limit: str  # "maxTotalTokens" | "maxCostUsd"
    allowed: float
    used: float
    projected: float


AGENT_EVENTS: tuple[type[JobEvent], ...] = (
    AgentModelCalled,
    AgentToolCalled,
    AgentToolReturned,
    AgentApprovalRequested,
    AgentApprovalGranted,
    AgentApprovalDenied,
    JobBudgetExceeded,
)
