"""Which executor runs which job type, with this worker's limits."""

from __future__ import annotations

from dataclasses import dataclass

from adapters import tracing
from adapters.executors.agent import run_agent
from adapters.executors.base import Execution, Progress
from adapters.executors.command import run_command
from adapters.executors.http import run_http
from domain.errors import FieldError
from domain.specs import AgentJob, CommandJob, HttpJob, parse_job_spec
from domain.wire import DispatchMessage


@dataclass(frozen=True)
class ExecutorSettings:
    allowed_commands: tuple[str, ...]
    http_allowed_hosts: tuple[str, ...] | None = None
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    default_model: str | None = None


async def execute(
    dispatch: DispatchMessage, settings: ExecutorSettings, progress: Progress
) -> Execution:
    """Validate the job's spec and run it; a bad spec is a failed job, not a crash."""
    try:
        spec = parse_job_spec(
            {
                "type": dispatch.type,
                "payload": dispatch.payload,
                "timeoutSeconds": dispatch.timeout_seconds,
            }
        )
    except FieldError as exc:
        return Execution(ok=False, error=f"invalid job spec: {exc}")
    timeout = float(spec.timeout_seconds) if spec.timeout_seconds else None
    if isinstance(spec, CommandJob):
        return await run_command(
            spec.payload, allowed=settings.allowed_commands, timeout=timeout, progress=progress
        )
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
    )
