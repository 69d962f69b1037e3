"""Each job type end to end through the Brain and a worker on a real nats-server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import nats
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters import tracing
from adapters.nats.server import NatsServerProcess
from domain.specs import parse_job_spec
from services.worker.executors import ExecutorSettings
from tests.fakes.anthropic_server import FakeAnthropic, text_message, tool_use
from tests.integration.pipeline import Pipeline, running_pipeline, types
from tests.polling import until


@pytest.fixture
async def pipe(nats_server: NatsServerProcess) -> AsyncIterator[Pipeline]:
    async with running_pipeline(nats_server) as p:
        yield p


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        reply = json.dumps({"echo": json.loads(body), "auth": self.headers.get("authorization")})
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def http_target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_command_job_end_to_end(pipe: Pipeline) -> None:
    await pipe.start_worker()
    job = await pipe.brain.dispatcher.dispatch(
        parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})
    )
    history = await pipe.wait_job(job.job_id, {"completed"})
    assert types(history) == ["JobDispatched", "JobReceived", "JobStarted", "JobCompleted"]
    done = history.events[-1].envelope.data
    assert done.result["exitCode"] == 0 and done.result["stdout"] == "hi\n"
    assert done.attempt == 1 and done.worker_id.startswith("worker-")
    assert {e.envelope.trace_id for e in history.events} == {job.trace_id}


async def test_http_job_end_to_end_keeps_secrets_out_of_events(
    pipe: Pipeline, http_target: str
) -> None:
    await pipe.start_worker()
    spec = parse_job_spec({"type": "http", "payload": {
        "url": f"{http_target}/hook", "method": "POST", "json": {"n": 1},
        "headers": {"Authorization": "Bearer s3cret"},
    }})  # fmt: skip
    job = await pipe.brain.dispatcher.dispatch(spec)
    history = await pipe.wait_job(job.job_id, {"completed"})
    result = history.events[-1].envelope.data.result
    assert result["status"] == 201
    assert result["json"] == {"echo": {"n": 1}, "auth": "Bearer s3cret"}  # the worker had it
    dispatched = history.events[0].envelope.data
    assert dispatched.payload["headers"]["Authorization"] == "***"  # the log does not


async def test_a_failing_command_ends_failed_with_its_exit_code(pipe: Pipeline) -> None:
    await pipe.start_worker()
    job = await pipe.brain.dispatcher.dispatch(
        parse_job_spec({"type": "command", "payload": {"command": "ls /no/such/dir"}})
    )
    history = await pipe.wait_job(job.job_id, {"failed"})
    failed = history.events[-1].envelope.data
    assert failed.reason == "error" and failed.attempt == 1
    assert history.state.status == "failed"


async def test_a_command_outside_the_allowlist_fails_with_the_digest_message(
    pipe: Pipeline,
) -> None:
    await pipe.start_worker()
    job = await pipe.brain.dispatcher.dispatch(
        parse_job_spec({"type": "command", "payload": {"command": "rm -rf /tmp/x"}})
    )
    history = await pipe.wait_job(job.job_id, {"failed"})
    assert history.events[-1].envelope.data.error == (
        "command rejected: 'rm' is not in the allowed commands list"
    )


async def start_agent_worker(pipe: Pipeline, api: FakeAnthropic) -> None:
    executors = ExecutorSettings(
        allowed_commands=("echo",), anthropic_api_key="sk-test", anthropic_base_url=api.base_url
    )
    await pipe.start_worker(executors=executors)


async def test_agent_job_uses_tools_and_reports_progress(pipe: Pipeline) -> None:
    script = [
        tool_use("command", {"command": "echo from-the-tool"}),
        text_message("The tool said from-the-tool.", usage=(30, 7)),
    ]
    with FakeAnthropic(script) as api:
        await start_agent_worker(pipe, api)
        job = await pipe.brain.dispatcher.dispatch(
            parse_job_spec({"type": "agent", "payload": {"prompt": "say hi through a tool"}})
        )
        history = await pipe.wait_job(job.job_id, {"completed"})
    assert types(history) == [
        "JobDispatched", "JobReceived", "JobStarted", "AgentModelCalled", "JobProgressed",
        "AgentToolCalled", "AgentToolReturned", "AgentModelCalled", "JobProgressed",
        "JobCompleted",
    ]  # fmt: skip
    result = history.events[-1].envelope.data.result
    assert result["text"] == "The tool said from-the-tool."
    assert result["iterations"] == 2 and result["toolCalls"][0]["ok"]
    tool_result = api.requests[1]["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result" and "from-the-tool" in json.dumps(tool_result)
    assert "sk-test" not in json.dumps([e.envelope.data.to_data() for e in history.events])


async def test_an_agent_job_without_an_api_key_fails_clearly(pipe: Pipeline) -> None:
    await pipe.start_worker()  # no ANTHROPIC_API_KEY configured
    job = await pipe.brain.dispatcher.dispatch(
        parse_job_spec({"type": "agent", "payload": {"prompt": "hi"}})
    )
    history = await pipe.wait_job(job.job_id, {"failed"})
    assert "ANTHROPIC_API_KEY" in history.events[-1].envelope.data.error


async def test_a_worker_written_against_the_wire_contract_only(
    pipe: Pipeline, nats_server: NatsServerProcess
) -> None:
    """The seed example: a raw nats-py worker that sends `running` then `completed`."""
    job = await pipe.brain.dispatcher.dispatch(
        parse_job_spec({"type": "command", "payload": {"command": "uptime"}})
    )
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind(durable="workers", stream="BAKER_JOBS")
    [msg] = await sub.fetch(1, timeout=5)
    job_msg = json.loads(msg.data)
    for status in ({"status": "running", "progress": "Analyzing..."}, {"status": "completed"}):
        await js.publish(
            f"baker.jobs.status.{job_msg['id']}",
            json.dumps({"id": job_msg["id"], **status}).encode(),
        )
    await msg.ack()
    await nc.close()
    history = await pipe.wait_job(job.job_id, {"completed"})
    assert types(history) == ["JobDispatched", "JobStarted", "JobCompleted"]
    assert history.events[1].envelope.data.progress == "Analyzing..."


async def test_the_trace_crosses_the_nats_hop(pipe: Pipeline) -> None:
    exporter = InMemorySpanExporter()
    tracing.add_processor(SimpleSpanProcessor(exporter))
    await pipe.start_worker()
    job = await pipe.brain.dispatcher.dispatch(
        parse_job_spec({"type": "command", "payload": {"command": "echo traced"}})
    )
    history = await pipe.wait_job(job.job_id, {"completed"})
    spans = [
        s for s in exporter.get_finished_spans() if s.context.trace_id == int(job.trace_id, 16)
    ]
    by_name = {s.name: s for s in spans}
    dispatch, run = by_name["job.dispatch"], by_name["job.run"]
    assert run.parent is not None and run.parent.span_id == dispatch.context.span_id
    assert run.attributes["job.id"] == job.job_id
    children = [s for s in spans if s.parent and s.parent.span_id == run.context.span_id]
    assert children == []  # a command job runs no model and no tool
    assert {e.envelope.trace_id for e in history.events} == {job.trace_id}


async def test_an_agent_job_s_model_calls_and_tools_are_spans_under_the_job(
    pipe: Pipeline,
) -> None:
    exporter = InMemorySpanExporter()
    tracing.add_processor(SimpleSpanProcessor(exporter))
    script = [tool_use("command", {"command": "echo tooled"}), text_message("done")]
    with FakeAnthropic(script) as api:
        await start_agent_worker(pipe, api)
        job = await pipe.brain.dispatcher.dispatch(
            parse_job_spec({"type": "agent", "payload": {"prompt": "use a tool"}})
        )
        history = await pipe.wait_job(job.job_id, {"completed"})
    spans = [
        s for s in exporter.get_finished_spans() if s.context.trace_id == int(job.trace_id, 16)
    ]
    run = next(s for s in spans if s.name == "job.run")
    children = [s.name for s in spans if s.parent and s.parent.span_id == run.context.span_id]
    assert sorted(children) == ["llm.call", "llm.call", "tool.command"]
    assert {e.envelope.trace_id for e in history.events} == {job.trace_id}


async def test_progress_never_overtakes_the_start_report(pipe: Pipeline) -> None:
    script = [
        tool_use("command", {"command": "echo step"}),
        text_message("done", usage=(3, 1)),
    ]
    with FakeAnthropic(script) as api:
        await start_agent_worker(pipe, api)
        worker = pipe.workers[-1][0]
        report, release = worker.reports.report_all, asyncio.Event()
        sent: list[str] = []

        async def slow_start(reports: Any) -> None:
            statuses = [r.status for r in reports]
            if "received" in statuses:
                await until(lambda: len(api.requests) >= 1)  # the agent loop runs meanwhile
                await release.wait()
            sent.extend(statuses)
            await report(reports)

        worker.reports.report_all = slow_start  # type: ignore[method-assign]
        job = await pipe.brain.dispatcher.dispatch(
            parse_job_spec({"type": "agent", "payload": {"prompt": "one step"}})
        )
        await until(lambda: len(api.requests) >= 1)
        release.set()
        history = await pipe.wait_job(job.job_id, {"completed"})
    # the third is the first model call's step, then its progress: neither before the start
    assert sent[:4] == ["received", "running", "running", "running"]
    assert types(history) == [
        "JobDispatched", "JobReceived", "JobStarted", "AgentModelCalled", "JobProgressed",
        "AgentToolCalled", "AgentToolReturned", "AgentModelCalled", "JobProgressed",
        "JobCompleted",
    ]  # fmt: skip
