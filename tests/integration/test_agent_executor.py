"""The `agent` executor: the real `anthropic` SDK against a fake Messages API over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.executors.agent import (
    LIMIT_TEXT,
    NO_API_KEY,
    default_agent_model,
    deprecated_models,
    run_agent,
)
from adapters.executors.base import Execution
from domain.specs import AgentPayload
from tests.fakes.anthropic_server import (
    FakeAnthropic,
    Reply,
    error,
    rate_limited,
    server_error,
    text_message,
    tool_use,
)

TOOLS = ("echo", "ls")


class Reports:
    """A `Progress` that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, text: str) -> None:
        self.lines.append(text)


async def run(api: FakeAnthropic, prompt: str = "What is up?", **options: Any) -> Execution:
    fields = {"prompt": prompt, **options.pop("payload", {})}
    options.setdefault("api_key", "test-key")
    options.setdefault("allowed_commands", TOOLS)
    return await run_agent(AgentPayload.model_validate(fields), base_url=api.base_url, **options)


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of the last (user) turn of a request."""
    last = request["messages"][-1]
    assert last["role"] == "user"
    return [block for block in last["content"] if block["type"] == "tool_result"]


async def test_a_tool_call_runs_and_its_result_goes_back_to_the_model() -> None:
    script = [
        tool_use("command", {"command": "echo hi"}, text="Let me check.", usage=(100, 20)),
        text_message("The command said hi.", usage=(150, 30)),
    ]
    reports = Reports()
    with FakeAnthropic(script) as api:
        execution = await run(api, progress=reports, default_model="claude-test-1")
    assert execution.ok, execution.error
    assert execution.result == {
        "text": "The command said hi.",
        "model": "claude-test-1",
        "iterations": 2,
        "toolCalls": [{"name": "command", "input": {"command": "echo hi"}, "ok": True}],
        "usage": {"inputTokens": 250, "outputTokens": 50, "cacheReadTokens": 0,
                  "cacheWriteTokens": 0},
        "costUsd": 0.0,  # claude-test-1 has no price
        "steps": 4,  # model call, tool call, tool result, model call
        "stopReason": "end_turn",
    }  # fmt: skip
    assert reports.lines == ["iteration 1/10: tool command", "iteration 2/10: answer"]
    first, second = api.requests
    assert first["model"] == "claude-test-1"
    assert first["messages"] == [{"role": "user", "content": "What is up?"}]
    assert [tool["name"] for tool in first["tools"]] == ["command", "http"]
    sent_key = api.headers[0].get("x-api-key") or api.headers[0]["authorization"]
    assert sent_key.removeprefix("Bearer ") == "test-key"
    assistant = second["messages"][1]
    assert assistant["role"] == "assistant"
    assert [block["type"] for block in assistant["content"]] == ["text", "tool_use"]
    (result,) = tool_results(second)
    assert result["tool_use_id"] == assistant["content"][1]["id"]
    assert result["is_error"] is False
    sent = json.loads(result["content"])
    assert sent["result"]["stdout"] == "hi\n"
    assert sent["result"]["exitCode"] == 0


async def test_payload_model_system_and_max_tokens_are_sent() -> None:
    with FakeAnthropic([text_message("ok")]) as api:
        payload = {"model": "claude-chosen", "system": "Be brief.", "maxTokens": 77}
        execution = await run(api, payload=payload, default_model="claude-other")
    assert execution.result["model"] == "claude-chosen"
    (request,) = api.requests
    assert (request["model"], request["system"], request["max_tokens"]) == (
        "claude-chosen",
        "Be brief.",
        77,
    )


def test_the_default_model_is_a_current_sonnet_the_sdk_does_not_deprecate() -> None:
    model = default_agent_model()
    assert model.startswith("claude-sonnet-")
    assert model not in deprecated_models()
    assert "claude-sonnet-4-20250514" in deprecated_models()


async def test_without_a_model_anywhere_the_default_is_used() -> None:
    with FakeAnthropic([text_message("ok")]) as api:
        execution = await run(api)
    assert api.requests[0]["model"] == default_agent_model()
    assert execution.result["model"] == default_agent_model()


async def test_a_deprecated_model_named_explicitly_is_passed_through() -> None:
    with FakeAnthropic([text_message("still here")]) as api:
        execution = await run(api, payload={"model": "claude-sonnet-4-20250514"})
    assert execution.ok
    assert api.requests[0]["model"] == "claude-sonnet-4-20250514"
    assert execution.result["text"] == "still here"
    (warning,) = execution.result["warnings"]
    assert "claude-sonnet-4-20250514 is deprecated" in warning


async def test_the_loop_stops_after_the_iteration_limit() -> None:
    reports = Reports()
    with FakeAnthropic(lambda request: tool_use("command", {"command": "echo again"})) as api:
        execution = await run(api, progress=reports)
    assert execution.ok
    assert len(api.requests) == 10
    assert execution.result["text"] == LIMIT_TEXT
    assert execution.result["iterations"] == 10
    assert execution.result["limitReached"] is True
    assert execution.result["stopReason"] == "max_iterations"
    assert len(execution.result["toolCalls"]) == 9  # the 10th answer's call would go unseen
    assert reports.lines == [f"iteration {i}/10: tool command" for i in range(1, 11)]


async def test_a_smaller_iteration_limit_is_honoured() -> None:
    with FakeAnthropic(lambda request: tool_use("command", {"command": "echo x"})) as api:
        execution = await run(api, max_iterations=3)
    assert len(api.requests) == 3
    assert execution.result["text"] == LIMIT_TEXT


async def test_a_rejected_tool_call_is_an_error_result_and_the_loop_goes_on() -> None:
    script = [tool_use("command", {"command": "rm -rf /"}), text_message("I may not do that.")]
    with FakeAnthropic(script) as api:
        execution = await run(api)
    assert execution.ok
    assert execution.result["text"] == "I may not do that."
    assert execution.result["toolCalls"] == [
        {"name": "command", "input": {"command": "rm -rf /"}, "ok": False}
    ]
    (result,) = tool_results(api.requests[1])
    assert result["is_error"] is True
    assert json.loads(result["content"]) == {
        "ok": False,
        "error": "command rejected: 'rm' is not in the allowed commands list",
    }


async def test_the_http_tool_obeys_the_host_allowlist() -> None:
    script = [tool_use("http", {"url": "http://127.0.0.1:9/"}), text_message("blocked")]
    with FakeAnthropic(script) as api:
        execution = await run(api, http_allowed_hosts=["only.example"])
    (result,) = tool_results(api.requests[1])
    assert result["is_error"] is True
    assert "host '127.0.0.1' is not in the allowed hosts list" in result["content"]
    assert execution.result["toolCalls"][0]["ok"] is False


async def test_the_http_tool_fetches_from_an_allowed_host() -> None:
    with FakeAnthropic() as api:
        api.push(tool_use("http", {"url": f"{api.base_url}/v1/models"}), text_message("1 model"))
        execution = await run(api, http_allowed_hosts=["127.0.0.1"])
    assert execution.result["toolCalls"][0]["ok"] is True
    (result,) = tool_results(api.requests[1])
    assert result["is_error"] is False
    sent = json.loads(result["content"])["result"]
    assert sent["status"] == 200
    assert sent["json"]["data"][0]["id"] == "claude-fake-1"


async def test_bad_tool_input_and_unknown_tools_are_error_results() -> None:
    script = [tool_use("command", {"cmd": "echo"}), tool_use("teleport", {}), text_message("ok")]
    with FakeAnthropic(script) as api:
        execution = await run(api)
    assert execution.ok
    (bad_input,) = tool_results(api.requests[1])
    assert "invalid command tool input" in bad_input["content"]
    (unknown,) = tool_results(api.requests[2])
    assert "unknown tool 'teleport'" in unknown["content"]


async def test_secrets_in_tool_input_are_masked_in_the_result() -> None:
    script = [
        tool_use("command", {"command": "API_TOKEN=s3cret echo hi"}),
        tool_use("http", {"url": "http://127.0.0.1:9/", "headers": {"Authorization": "Bearer x"}}),
        text_message("done"),
    ]
    with FakeAnthropic(script) as api:
        execution = await run(api, http_allowed_hosts=[])
    inputs = [call["input"] for call in execution.result["toolCalls"]]
    assert inputs[0] == {"command": "API_TOKEN=*** echo hi"}
    assert inputs[1]["headers"] == {"Authorization": "***"}
    assert "s3cret" not in json.dumps(execution.result)


async def test_a_rate_limit_is_retried_by_the_sdk() -> None:
    with FakeAnthropic([rate_limited(), text_message("after the wait")]) as api:
        execution = await run(api, max_retries=3)
    assert execution.ok
    assert execution.result["text"] == "after the wait"
    assert len(api.requests) == 2
    assert execution.result["iterations"] == 1


async def test_server_errors_until_the_retries_run_out_fail_the_job() -> None:
    with FakeAnthropic(lambda request: server_error()) as api:
        execution = await run(api, max_retries=2)
    assert len(api.requests) == 3
    assert not execution.ok
    assert execution.error == "anthropic API error 500: internal server error"


async def test_a_bad_request_fails_at_once_with_the_api_message() -> None:
    answer = error(400, "invalid_request_error", "max_tokens: must be at most 64000")
    with FakeAnthropic([answer]) as api:
        execution = await run(api)
    assert len(api.requests) == 1
    assert not execution.ok
    assert execution.error == "anthropic API error 400: max_tokens: must be at most 64000"


async def test_an_authentication_error_is_not_retried() -> None:
    with FakeAnthropic([error(401, "authentication_error", "invalid x-api-key")]) as api:
        execution = await run(api)
    assert len(api.requests) == 1
    assert execution.error == "anthropic API error 401: invalid x-api-key"


async def test_no_api_key_fails_clearly_without_a_request() -> None:
    with FakeAnthropic([text_message("never")]) as api:
        for key in (None, ""):
            execution = await run(api, api_key=key)
            assert execution == Execution(ok=False, error=NO_API_KEY)
    assert api.requests == []
    assert "ANTHROPIC_API_KEY" in NO_API_KEY


async def test_an_unreachable_api_fails_with_the_connection_error() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    execution = await run_agent(
        AgentPayload(prompt="hi"),
        api_key="k",
        base_url=f"http://127.0.0.1:{port}",
        allowed_commands=TOOLS,
        max_retries=0,
    )
    assert not execution.ok
    assert execution.error == "anthropic API unreachable after 0 retries: Connection error."


async def test_each_model_call_and_tool_run_is_a_span_under_the_job_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    script = [tool_use("command", {"command": "echo hi"}, usage=(7, 3)), text_message("done")]
    with FakeAnthropic(script) as api, tracer.start_as_current_span("job") as job:
        await run(api, tracer=tracer, default_model="claude-traced")
    finished = [span for span in exporter.get_finished_spans() if span.name != "job"]
    assert [span.name for span in finished] == ["llm.call", "tool.command", "llm.call"]
    job_id = job.get_span_context().span_id
    assert all(span.parent is not None and span.parent.span_id == job_id for span in finished)
    first, tool, second = (dict(span.attributes or {}) for span in finished)
    assert first == {
        "llm.model": "claude-traced",
        "llm.iteration": 1,
        "llm.input_tokens": 7,
        "llm.output_tokens": 3,
        "llm.stop_reason": "tool_use",
    }
    assert tool == {"tool.name": "command", "tool.ok": True}
    assert (second["llm.iteration"], second["llm.output_tokens"]) == (2, 5)
    provider.shutdown()


async def test_cancellation_stops_the_loop() -> None:
    in_flight = threading.Event()
    release = threading.Event()

    def slow(request: dict[str, Any]) -> Reply:
        in_flight.set()
        release.wait(timeout=10)
        return text_message("too late")

    with FakeAnthropic(slow) as api:
        task = asyncio.create_task(run(api))
        try:
            await asyncio.to_thread(in_flight.wait, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            release.set()
    assert len(api.requests) == 1


async def test_the_jobs_time_limit_ends_the_conversation() -> None:
    release = threading.Event()

    def tool_then_stall(request: dict[str, Any]) -> Reply:
        if len(request["messages"]) == 1:
            return tool_use("command", {"command": "echo step"})
        release.wait(timeout=10)  # the second model call never answers in time
        return text_message("too late")

    with FakeAnthropic(tool_then_stall) as api:
        try:
            execution = await run(api, timeout=0.5)
        finally:
            release.set()
    assert not execution.ok
    assert execution.error == "agent job timed out after 0.5 s"
    assert execution.result["iterations"] == 2
    assert [call["name"] for call in execution.result["toolCalls"]] == ["command"]
