"""The `agent` executor: a Claude tool-use loop with the official `anthropic` SDK.

The model may call two tools, `command` and `http` (`agent_tools`). Every step is recorded
in the job's `StepJournal` before the next begins, and a run starts from the steps already
recorded (DESIGN §10): a model call whose reply is recorded is not made again, a tool whose
return is recorded is not run again. The SDK retries 429 and 5xx answers itself
(`max_retries`, with backoff); every other API error ends the job with the SDK's message.
Each model call is streamed, its text going to the job's live output as it arrives; the step
is recorded from the whole reply once it is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, get_args

import anthropic
from anthropic import AsyncAnthropic
from anthropic.types import Message
from opentelemetry import trace

from adapters.executors.agent_tools import TOOLS, Tools, recorded_input, use_tool
from adapters.executors.base import (
    NO_JOURNAL,
    Execution,
    Output,
    Progress,
    StepJournal,
    no_output,
    no_progress,
)
from domain.budget import check_budget
from domain.command_sandbox import DEFAULT_SANDBOX, CommandSandbox
from domain.conversation import Conversation, ToolUse, rebuild
from domain.events import AgentModelCalled, AgentToolCalled, AgentToolReturned, Usage
from domain.pricing import DEFAULT_TABLE, PriceTable
from domain.specs import AgentPayload

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
class _Run:
    """One run of a job's conversation: what it needs, and the result document built from it."""

    model: str
    payload: AgentPayload
    conversation: Conversation
    tools: Tools
    journal: StepJournal
    prices: PriceTable
    progress: Progress
    tracer: trace.Tracer | None
    max_iterations: int
    output: Output = no_output
    warnings: list[str] = field(default_factory=list)
    iteration: int = 0  # the model call made last or in flight (a timeout counts it)

    def result(self, text: str, stop_reason: str | None) -> dict[str, Any]:
        conv = self.conversation
        doc: dict[str, Any] = {
            "text": text,
            "model": self.model,
            "iterations": max(self.iteration, conv.model_calls),
            "toolCalls": conv.tool_calls,
            "usage": {
                "inputTokens": conv.input_tokens,
                "outputTokens": conv.output_tokens,
                "cacheReadTokens": conv.cache_read_tokens,
                "cacheWriteTokens": conv.cache_write_tokens,
            },
            "costUsd": conv.cost_usd,
            "steps": conv.last_step,
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
    journal: StepJournal = NO_JOURNAL,
    prices: PriceTable = DEFAULT_TABLE,
    output: Output = no_output,
    sandbox: CommandSandbox = DEFAULT_SANDBOX,
) -> Execution:
    """Run the prompt through at most `max_iterations` model calls, executing tool calls,
    within `timeout` seconds for the whole conversation (the job's `timeoutSeconds`),
    continuing after the steps `journal` has recorded; the model's text goes to `output` as
    it is streamed.

    `client_factory(api_key=, base_url=, max_retries=)` makes the client (default
    `AsyncAnthropic`); the executor owns it and closes it when done.
    """
    if not api_key:
        return Execution(ok=False, error=NO_API_KEY)
    model = payload.model or default_model or default_agent_model()
    tools = Tools(
        tuple(allowed_commands),
        None if http_allowed_hosts is None else tuple(http_allowed_hosts),
        sandbox,
    )
    conversation = rebuild(payload.prompt, await journal.recorded())
    run = _Run(model, payload, conversation, tools, journal, prices, progress, tracer,
               max_iterations, output)  # fmt: skip
    if end_of_life := deprecated_models().get(model):
        run.warnings.append(f"model {model} is deprecated (end of life {end_of_life})")
    client = (client_factory or AsyncAnthropic)(
        api_key=api_key, base_url=base_url, max_retries=max_retries
    )
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await _converse(client, run)
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


async def _converse(client: AsyncAnthropic, run: _Run) -> Execution:
    conv = run.conversation
    while True:
        if conv.awaiting_tools:
            if conv.model_calls >= run.max_iterations:
                break  # the model would never see these tools' results
            for use in conv.unanswered():
                if _needs_approval(use, run):
                    return await _wait_for_approval(use, run)
                await _answer(use, run)
            continue
        if conv.last_reply is not None and conv.messages[-1]["role"] == "assistant":
            reply = conv.last_reply
            return Execution(ok=True, result=run.result(_text(reply.content), reply.stop_reason))
        if conv.model_calls >= run.max_iterations:
            break
        exceeded = check_budget(run.payload.budget, conv, run.model, run.prices)
        if exceeded is not None:
            return Execution(
                ok=False, result=run.result("", "budget_exceeded"), error=exceeded.message(),
                reason="budget_exceeded", details=exceeded.document(),
            )  # fmt: skip
        await _call_model(client, run)
    result = run.result(LIMIT_TEXT, "max_iterations")
    result["limitReached"] = True
    return Execution(ok=True, result=result)


async def _call_model(client: AsyncAnthropic, run: _Run) -> None:
    conv = run.conversation
    iteration = run.iteration = conv.model_calls + 1
    attributes = {"llm.model": run.model, "llm.iteration": iteration}
    started = time.perf_counter()
    with _span(run.tracer, "llm.call", attributes) as span, _quiet_deprecation(run.model):
        async with client.messages.stream(
            model=run.model,
            max_tokens=run.payload.max_tokens or DEFAULT_MAX_TOKENS,
            system=run.payload.system or DEFAULT_SYSTEM,
            messages=conv.messages,  # type: ignore[arg-type]
            tools=TOOLS,
        ) as stream:
            async for text in stream.text_stream:
                run.output("text", text)
            reply = await stream.get_final_message()
        if span is not None:
            span.set_attribute("llm.input_tokens", reply.usage.input_tokens)
            span.set_attribute("llm.output_tokens", reply.usage.output_tokens)
            span.set_attribute("llm.stop_reason", reply.stop_reason or "")
    took = int((time.perf_counter() - started) * 1000)
    usage = _usage(reply)
    step = conv.next_step()
    content = [block.model_dump(mode="json", exclude_none=True) for block in reply.content]
    await run.journal.record(
        "model", step, model=run.model, stop_reason=reply.stop_reason, content=content,
        usage=usage, duration_ms=took,
    )  # fmt: skip
    event = AgentModelCalled(
        attempt=1, step=step, model=run.model, stop_reason=reply.stop_reason, content=content,
        usage=usage, cost_usd=run.prices.cost(run.model, usage.model_dump(by_alias=True)),
        duration_ms=took,
    )  # fmt: skip
    conv.add_reply(event)
    names = ", ".join(use.tool for use in conv.open_uses)
    what = f"tool {names}" if names else "answer"
    await run.progress(f"iteration {iteration}/{run.max_iterations}: {what}")


def _needs_approval(use: ToolUse, run: _Run) -> bool:
    return use.tool in (run.payload.approve or ()) and use.approval != "granted"


async def _wait_for_approval(use: ToolUse, run: _Run) -> Execution:
    """Record that this tool call waits for an operator (unless an earlier run did) and stop:
    the job is `waiting`, and the worker's slot is free until the answer queues it again."""
    if use.approval is None:
        # the progress first: once the request is recorded the job is `waiting`, where a
        # `running` report would be a rejected transition
        await run.progress(f"waiting for approval of {use.tool} ({use.tool_use_id})")
        step = run.conversation.next_step()
        await run.journal.record(
            "approval", step, tool_use_id=use.tool_use_id, tool=use.tool,
            input=recorded_input(use.input),
        )  # fmt: skip
    return Execution(ok=True, waiting=True)


async def _answer(use: ToolUse, run: _Run) -> None:
    """Run one tool use the last reply asked for, recording its call (unless an earlier
    attempt did) and its return."""
    conv = run.conversation
    if not use.called:
        step = conv.next_step()
        shown = recorded_input(use.input)
        await run.journal.record(
            "toolCall", step, tool_use_id=use.tool_use_id, tool=use.tool, input=shown
        )
        conv.add_call(AgentToolCalled(attempt=1, step=step, tool_use_id=use.tool_use_id,
                                      tool=use.tool, input=shown))  # fmt: skip
    with _span(run.tracer, f"tool.{use.tool}", {"tool.name": use.tool}) as span:
        output, is_error, took = await use_tool(use.tool, use.input, run.tools)
        if span is not None:
            span.set_attribute("tool.ok", not is_error)
    step = conv.next_step()
    await run.journal.record(
        "toolResult", step, tool_use_id=use.tool_use_id, output=output, is_error=is_error,
        duration_ms=took,
    )  # fmt: skip
    returned = AgentToolReturned(
        attempt=1, step=step, tool_use_id=use.tool_use_id, output=output, is_error=is_error,
        duration_ms=took,
    )  # fmt: skip
    conv.add_return(returned)


def _usage(reply: Message) -> Usage:
    usage = reply.usage
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
    )


def _text(content: list[dict[str, Any]]) -> str:
    return "".join(str(block.get("text", "")) for block in content if block.get("type") == "text")


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
