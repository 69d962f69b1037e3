"""Which executor runs which job type, with this worker's limits."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from adapters import tracing
from adapters.executors.agent import run_agent
from adapters.executors.base import (
    NO_JOURNAL,
    Execution,
    Output,
    Progress,
    StepJournal,
    no_output,
)
from adapters.executors.command import REFUSALS, run_command
from adapters.executors.http import run_http
from domain.command_sandbox import DEFAULT_SANDBOX, CommandSandbox
from domain.errors import FieldError
from domain.pricing import DEFAULT_TABLE, PriceTable
from domain.specs import AgentJob, CommandJob, HttpJob, parse_job_spec
from domain.wire import DispatchMessage

JobSpec = AgentJob | CommandJob | HttpJob


@dataclass(frozen=True)
class ExecutorSettings:
    allowed_commands: tuple[str, ...]
    http_allowed_hosts: tuple[str, ...] | None = None
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    default_model: str | None = None
    prices: PriceTable = DEFAULT_TABLE
    sandbox: CommandSandbox = DEFAULT_SANDBOX  # how command children are confined


def command_refusals() -> dict[str, int]:
    """Command lines refused in this process since it started, by the rule that refused them."""
    return dict(REFUSALS)


def _spec(kind: str, payload: dict[str, Any], timeout: int | None) -> JobSpec:
    """The validated spec. A command job's is remembered: the same few commands come again
    and again, and its spec holds nothing mutable (an invalid one is not remembered)."""
    if kind == "command" and len(payload) == 1 and isinstance(payload.get("command"), str):
        return _command_spec(payload["command"], timeout)
    return parse_job_spec({"type": kind, "payload": payload, "timeoutSeconds": timeout})


@functools.lru_cache(maxsize=512)
def _command_spec(command: str, timeout: int | None) -> JobSpec:
    return parse_job_spec(
        {"type": "command", "payload": {"command": command}, "timeoutSeconds": timeout}
    )


async def execute(
    dispatch: DispatchMessage,
    settings: ExecutorSettings,
    progress: Progress,
    journal: StepJournal = NO_JOURNAL,
    output: Output = no_output,
) -> Execution:
    """Validate the job's spec and run it, its live output (agent text, command stdout and
    stderr) going to `output`; a bad spec is a failed job, not a crash."""
    try:
        spec = _spec(dispatch.type, dispatch.payload, dispatch.timeout_seconds)
    except FieldError as exc:
        return Execution(ok=False, error=f"invalid job spec: {exc}")
    timeout = float(spec.timeout_seconds) if spec.timeout_seconds else None
    if isinstance(spec, CommandJob):
        return await run_command(
            spec.payload, allowed=settings.allowed_commands, timeout=timeout, progress=progress,
            output=output, sandbox=settings.sandbox,
        )  # fmt: skip
    if isinstance(spec, HttpJob):
        return await run_http(
            spec.payload,
            allowed_hosts=settings.http_allowed_hosts,
            timeout=timeout,
            progress=progress,
        )
    assert isinstance(spec, AgentJob)
    return await run_agent(
        spec.payload,
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        default_model=settings.default_model,
        allowed_commands=settings.allowed_commands,
        http_allowed_hosts=settings.http_allowed_hosts,
        progress=progress,
        tracer=tracing.tracer("baker.worker"),
        timeout=timeout,
        journal=journal,
        prices=settings.prices,
        output=output,
        sandbox=settings.sandbox,
    )
