"""The `agent` executor: a Claude tool-use loop with the official `anthropic` SDK.

The model may call two tools, `command` and `http`, which run through the same executors,
allowlists and limits as `command` and `http` jobs. The SDK retries 429 and 5xx answers itself
(`max_retries`, with backoff); every other API error ends the job with the SDK's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, get_args

import anthropic
from anthropic import AsyncAnthropic
from anthropic.types import Message, MessageParam, ToolParam, ToolResultBlockParam, ToolUseBlock
from opentelemetry import trace
from pydantic import ValidationError

from adapters.executors.base import Execution, Progress, no_progress
from adapters.executors.command import run_command
from adapters.executors.http import run_http
from domain.specs import REDACTED, AgentPayload, CommandPayload, HttpPayload, redact_command

FALLBACK_MODEL = "claude-sonnet-5-5"
# Models past their end of life that newer SDKs drop from their deprecation table; a job that
# still names one is passed through, with the warning its user needs.
RETIRED_MODELS: dict[str, str] = {"claude-sonnet-4-20250514": "June 15th, 2026"}
DEFAULT_MAX_TOKENS = 1024
LIMIT_TEXT = "Reached maximum tool-use iterations."
NO_API_KEY = "agent job needs ANTHROPIC_API_KEY: no API key is configured for this worker"
DEFAULT_SYSTEM = (
    "You are a Baker Street worker agent. Answer the task. When you need facts from the "
    "system, use the `command` tool (one allowed binary, no shell) or the `http` tool."
)
TOOLS: list[ToolParam] = [
    {
        "name": "command",
        "description": "Run one allowed command (no shell: pipes and `;` are plain arguments).",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "e.g. `df -h`"}},
            "required": ["command"],
        },
    },
    {
        "name": "http",
        "description": "Send one HTTP request and get its status, selected headers and body.",
        "input_schema": {
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "method": {"type": "string", "description": "GET (default), POST, PUT, ..."},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "json": {"description": "a JSON request body"},
            },
            "required": ["url"],
        },
    },
]

ClientFactory = Callable[..., AsyncAnthropic]


def deprecated_models() -> dict[str, str]:
    """The models the installed SDK warns about, and those we know are retired, with their
    end-of-life dates."""
    try:
        from anthropic.resources.messages import messages  # noqa: PLC0415
    except ImportError:
        return dict(RETIRED_MODELS)
    listed: dict[str, str] = getattr(messages, "DEPRECATED_MODELS", {})
    return {**RETIRED_MODELS, **listed}


def default_agent_model() -> str:
    """The first Sonnet model the installed SDK knows that it does not list as deprecated."""
    try:
        from anthropic.types import Model  # noqa: PLC0415

        known = [name for arm in get_args(Model) for name in get_args(arm)]
    except Exception:  # an SDK whose `Model` is shaped differently: use the known-good name
        return FALLBACK_MODEL
    retired = deprecated_models()
    for name in known:
        if isinstance(name, str) and name.startswith("claude-sonnet-") and name not in retired:
            return name
    return FALLBACK_MODEL


@dataclass
class _Tools:
    """What the tools may do: the allowlists and limits of `command` and `http` jobs."""

    allowed_commands: tuple[str, ...]
    http_allowed_hosts: tuple[str, ...] | None


@dataclass
class _Run:
    """The state of one conversation, and the result document built from it."""

    model: str
    messages: list[MessageParam]
    iterations: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    warnings: list[str] = field(default_factory=list)

    def result(self, text: str, stop_reason: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "text": text,
            "model": self.model,
            "iterations": self.iterations,
            "toolCalls": self.tool_calls,
            "usage": {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens},
            "stopReason": stop_reason,
        }
        if self.warnings:
            doc["warnings"] = self.warnings
        return doc


async def run_agent(
    payload: AgentPayload,
    *,
    api_key: str | None,
    base_url: str | None = None,
    default_model: str | None = None,
    allowed_commands: Iterable[str],
    http_allowed_hosts: Iterable[str] | None = None,
    progress: Progress = no_progress,
    max_iterations: int = 10,
    max_retries: int = 3,
    tracer: trace.Tracer | None = None,
    client_factory: ClientFactory | None = None,
    timeout: float | None = None,
) -> Execution:
    """Run the prompt through at most `max_iterations` model calls, executing tool calls,
    within `timeout` seconds for the whole conversation (the job's `timeoutSeconds`).

    `client_factory(api_key=, base_url=, max_retries=)` makes the client (default
    `AsyncAnthropic`); the executor owns it and closes it when done.
    """
    if not api_key:
        return Execution(ok=False, error=NO_API_KEY)
    model = payload.model or default_model or default_agent_model()
    run = _Run(model=model, messages=[{"role": "user", "content": payload.prompt}])
    if end_of_life := deprecated_models().get(model):
        run.warnings.append(f"model {model} is deprecated (end of life {end_of_life})")
    tools = _Tools(
        tuple(allowed_commands), None if http_allowed_hosts is None else tuple(http_allowed_hosts)
    )
    client = (client_factory or AsyncAnthropic)(
        api_key=api_key, base_url=base_url, max_retries=max_retries
    )
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await _converse(client, payload, run, tools, progress, max_iterations, tracer)
    except TimeoutError:
        if not deadline.expired():
            raise
        error = f"agent job timed out after {timeout:g} s"
        return Execution(ok=False, result=run.result("", "timeout"), error=error)
    except anthropic.APIStatusError as exc:
        error = f"anthropic API error {exc.status_code}: {exc.api_message or exc.message}"
        return Execution(ok=False, result=run.result("", None), error=error)
    except anthropic.APIConnectionError as exc:
        error = f"anthropic API unreachable after {max_retries} retries: {exc.message}"
        return Execution(ok=False, result=run.result("", None), error=error)
    except anthropic.APIError as exc:
        return Execution(ok=False, result=run.result("", None), error=f"anthropic: {exc.message}")
    finally:
        await client.close()


async def _converse(
    client: AsyncAnthropic,
    payload: AgentPayload,
    run: _Run,
    tools: _Tools,
    progress: Progress,
    max_iterations: int,
    tracer: trace.Tracer | None,
) -> Execution:
    for iteration in range(1, max_iterations + 1):
        run.iterations = iteration
        reply = await _call_model(client, payload, run, tracer)
        uses = [block for block in reply.content if isinstance(block, ToolUseBlock)]
        names = ", ".join(block.name for block in uses)
        step = f"tool {names}" if names else "answer"
        await progress(f"iteration {iteration}/{max_iterations}: {step}")
        if reply.stop_reason != "tool_use" or not uses:
            return Execution(ok=True, result=run.result(_text(reply), reply.stop_reason))
        if iteration == max_iterations:
            break  # the model would never see these tools' results
        run.messages.append({"role": "assistant", "content": _as_params(reply)})
        results = [await _use_tool(block, run, tools, tracer) for block in uses]
        run.messages.append({"role": "user", "content": results})
    result = run.result(LIMIT_TEXT, "max_iterations")
    result["limitReached"] = True
    return Execution(ok=True, result=result)


async def _call_model(
    client: AsyncAnthropic, payload: AgentPayload, run: _Run, tracer: trace.Tracer | None
) -> Message:
    attributes = {"llm.model": run.model, "llm.iteration": run.iterations}
    with _span(tracer, "llm.call", attributes) as span, _quiet_deprecation(run.model):
        reply = await client.messages.create(
            model=run.model,
            max_tokens=payload.max_tokens or DEFAULT_MAX_TOKENS,
            system=payload.system or DEFAULT_SYSTEM,
            messages=run.messages,
            tools=TOOLS,
        )
        run.input_tokens += reply.usage.input_tokens
        run.output_tokens += reply.usage.output_tokens
        if span is not None:
            span.set_attribute("llm.input_tokens", reply.usage.input_tokens)
            span.set_attribute("llm.output_tokens", reply.usage.output_tokens)
            span.set_attribute("llm.stop_reason", reply.stop_reason or "")
    return reply


async def _use_tool(
    block: ToolUseBlock, run: _Run, tools: _Tools, tracer: trace.Tracer | None
) -> ToolResultBlockParam:
    with _span(tracer, f"tool.{block.name}", {"tool.name": block.name}) as span:
        execution = await _run_tool(block.name, block.input, tools)
        if span is not None:
            span.set_attribute("tool.ok", execution.ok)
    run.tool_calls.append(
        {"name": block.name, "input": _recorded_input(block.input), "ok": execution.ok}
    )
    content = {"ok": execution.ok, "error": execution.error, "result": execution.result}
    return {
        "type": "tool_result",
        "tool_use_id": block.id,
        "content": json.dumps({k: v for k, v in content.items() if v is not None}),
        "is_error": not execution.ok,
    }


async def _run_tool(name: str, args: dict[str, object], tools: _Tools) -> Execution:
    try:
        if name == "command":
            command = CommandPayload.model_validate({"command": args.get("command")})
            return await run_command(command, allowed=tools.allowed_commands, timeout=None)
        if name == "http":
            request = HttpPayload.model_validate(args)
            return await run_http(request, allowed_hosts=tools.http_allowed_hosts)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return Execution(ok=False, error=f"invalid {name} tool input: {problems}")
    return Execution(ok=False, error=f"unknown tool '{name}'")


def _recorded_input(args: dict[str, object]) -> dict[str, object]:
    """The tool input as kept in the job result: secrets in env assignments and headers masked."""
    recorded = dict(args)
    if isinstance(recorded.get("command"), str):
        recorded["command"] = redact_command(str(recorded["command"]))
    headers = recorded.get("headers")
    if isinstance(headers, dict):
        recorded["headers"] = {key: REDACTED for key in headers}
    return recorded


def _as_params(reply: Message) -> list[Any]:
    """The assistant's content blocks as request params, to send the turn back."""
    return [block.model_dump(mode="json", exclude_none=True) for block in reply.content]


def _text(reply: Message) -> str:
    return "".join(block.text for block in reply.content if block.type == "text")


def _span(
    tracer: trace.Tracer | None, name: str, attributes: dict[str, Any]
) -> contextlib.AbstractContextManager[trace.Span | None]:
    if tracer is None:
        return contextlib.nullcontext()
    return tracer.start_as_current_span(name, attributes=attributes)


@contextlib.contextmanager
def _quiet_deprecation(model: str) -> Iterator[None]:
    """Silence the SDK's DeprecationWarning for a model named explicitly (the job's result
    records the deprecation instead). Only entered for deprecated models, because
    `catch_warnings` swaps process-wide state across the await."""
    if model not in deprecated_models():
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"The model .* is deprecated", category=DeprecationWarning
        )
        yield
