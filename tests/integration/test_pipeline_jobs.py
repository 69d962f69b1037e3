"""Each job type end to end through the Brain and a worker on a real nats-server."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.nats.server import NatsServerProcess
from domain.specs import parse_job_spec
from tests.integration.pipeline import Pipeline, running_pipeline, types


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
