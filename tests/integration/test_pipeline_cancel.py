"""Cancellation: the worker running a job notices, stops it, and the job ends `cancelled`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from adapters.nats.job_queue import QueueUnavailable
from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import Topology
from domain.specs import parse_job_spec
from services.brain.dispatcher import JobAlreadyFinished, JobNotFound
from services.worker.executors import ExecutorSettings
from services.worker.worker import Worker
from tests.fakes.anthropic_server import FakeAnthropic, Reply, text_message
from tests.integration.pipeline import Pipeline, running_pipeline, types
from tests.polling import until

RELEASE = threading.Event()  # lets blocked fake servers return when a test ends


@pytest.fixture
async def pipe(nats_server: NatsServerProcess) -> AsyncIterator[Pipeline]:
    RELEASE.clear()
    async with running_pipeline(nats_server) as p:
        yield p
    RELEASE.set()


def processes_running(fragment: str) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = stat.read_bytes().replace(b"\0", b" ").decode()
            state = (stat.parent / "stat").read_text().split()[2]
        except OSError:
            continue
        if fragment in cmd and state != "Z":
            found.append(int(stat.parent.name))
    return found


async def cancel_while_running(pipe: Pipeline, spec: Any) -> list[str]:
    job = await pipe.brain.dispatcher.dispatch(spec)
    await pipe.wait_job(job.job_id, lambda h: h.state.status == "running")
    await pipe.brain.dispatcher.cancel(job.job_id, "operator changed their mind")
    history = await pipe.wait_job(job.job_id, {"cancelled"})
    cancelled = history.events[-1].envelope.data
    assert "operator changed their mind" in cancelled.detail
    requested = next(e for e in history.events if e.envelope.type == "JobCancelRequested")
    assert requested.envelope.trace_id  # the cancel request's own trace
    assert history.events[-1].envelope.trace_id  # the worker's report, in the job's trace
    return types(history)


async def test_cancelling_a_command_kills_its_process(pipe: Pipeline) -> None:
    await pipe.start_worker()
    seen = await cancel_while_running(
        pipe, parse_job_spec({"type": "command", "payload": {"command": "sleep 37.25"}})
    )
    assert seen == [
        "JobDispatched", "JobReceived", "JobStarted", "JobCancelRequested", "JobCancelled",
    ]  # fmt: skip
    assert processes_running("sleep 37.25") == []


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        RELEASE.wait(30)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def slow_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/slow"
    RELEASE.set()
    server.shutdown()
    server.server_close()


async def test_cancelling_an_http_job_aborts_the_request(pipe: Pipeline, slow_url: str) -> None:
    await pipe.start_worker()
    spec = parse_job_spec({"type": "http", "payload": {"url": slow_url, "timeoutSeconds": 60}})
    seen = await cancel_while_running(pipe, spec)
    assert seen[-2:] == ["JobCancelRequested", "JobCancelled"]


async def test_cancelling_an_agent_job_stops_its_loop(pipe: Pipeline) -> None:
    def slow_model(_request: dict[str, Any]) -> Reply:
        RELEASE.wait(30)
        return text_message("too late")

    with FakeAnthropic(slow_model) as api:
        await pipe.start_worker(executors=ExecutorSettings(
            allowed_commands=("echo",), anthropic_api_key="k", anthropic_base_url=api.base_url,
        ))  # fmt: skip
        seen = await cancel_while_running(
            pipe, parse_job_spec({"type": "agent", "payload": {"prompt": "think slowly"}})
        )
        RELEASE.set()
    assert seen[-2:] == ["JobCancelRequested", "JobCancelled"]


async def test_a_job_cancelled_while_queued_never_runs(pipe: Pipeline) -> None:
    job = await pipe.brain.dispatcher.dispatch(
        parse_job_spec({"type": "command", "payload": {"command": "sleep 41.5"}})
    )
    await pipe.brain.dispatcher.cancel(job.job_id)
    await pipe.start_worker()
    history = await pipe.wait_job(job.job_id, {"cancelled"})
    assert types(history) == ["JobDispatched", "JobCancelRequested", "JobCancelled"]
    assert "before it started" in history.events[-1].envelope.data.detail
    assert processes_running("sleep 41.5") == []


async def test_cancelling_a_finished_or_unknown_job_is_refused(pipe: Pipeline) -> None:
    await pipe.start_worker()
    job = await pipe.brain.dispatcher.dispatch(
        parse_job_spec({"type": "command", "payload": {"command": "echo done"}})
    )
    await pipe.wait_job(job.job_id, {"completed"})
    with pytest.raises(JobAlreadyFinished, match="already completed"):
        await pipe.brain.dispatcher.cancel(job.job_id)
    with pytest.raises(JobNotFound):
        await pipe.brain.dispatcher.cancel("job-nobody-dispatched")
    history = await pipe.store.load("job", job.job_id)
    assert types(history)[-1] == "TransitionRejected"  # the refused cancel is in the audit


async def test_a_cancel_that_arrives_while_the_start_is_reported_stops_the_job(
    pipe: Pipeline,
) -> None:
    worker = await pipe.start_worker()
    holding, release = asyncio.Event(), asyncio.Event()
    report = worker.reports.report_all

    async def held_start(reports: Any) -> None:
        if any(r.status == "running" for r in reports) and not release.is_set():
            holding.set()
            await release.wait()
        await report(reports)

    worker.reports.report_all = held_start  # type: ignore[method-assign]
    job = await pipe.brain.dispatcher.dispatch(
        parse_job_spec({"type": "command", "payload": {"command": "sleep 29.25"}})
    )
    await holding.wait()  # the executor runs already: the start is reported alongside
    await pipe.brain.dispatcher.cancel(job.job_id, "changed course")
    await until(lambda: job.job_id in worker.cancels)
    release.set()
    history = await pipe.wait_job(job.job_id, {"cancelled", "completed", "failed"})
    assert types(history)[-1] == "JobCancelled"
    assert "JobCompleted" not in types(history)
    assert "changed course" in history.events[-1].envelope.data.detail
    assert processes_running("sleep 29.25") == []


async def test_a_start_report_that_fails_stops_the_job_it_started(pipe: Pipeline) -> None:
    worker = await pipe.start_worker()
    report = worker.reports.report_all
    refused = asyncio.Event()

    async def failing_start(reports: Any) -> None:
        if any(r.status == "running" for r in reports) and not refused.is_set():
            await until(lambda: processes_running("sleep 28.75") != [])
            refused.set()
            raise QueueUnavailable("BAKER_JOBS did not answer")
        await report(reports)

    worker.reports.report_all = failing_start  # type: ignore[method-assign]
    job = await pipe.brain.dispatcher.dispatch(
        parse_job_spec({"type": "command", "payload": {"command": "sleep 28.75"}})
    )
    await refused.wait()
    await until(lambda: worker.stats.crashed == 1)
    assert processes_running("sleep 28.75") == []  # killed, not left running unreported
    history = await pipe.store.load("job", job.job_id)
    assert "JobCompleted" not in types(history)


async def test_a_cancel_signal_the_worker_missed_is_found_in_the_bucket(
    nats_server: NatsServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(self: Worker, job_id: str, reason: str) -> None:  # as if sent while reconnecting
        return None

    monkeypatch.setattr(Worker, "_on_cancel", lost)
    async with running_pipeline(nats_server, topology=Topology(ack_wait=0.6)) as pipe:
        worker = await pipe.start_worker()
        job = await pipe.brain.dispatcher.dispatch(
            parse_job_spec({"type": "command", "payload": {"command": "sleep 29.75"}})
        )
        await pipe.wait_job(job.job_id, lambda h: h.state.status == "running")
        await pipe.brain.dispatcher.cancel(job.job_id, "missed once")
        history = await pipe.wait_job(job.job_id, {"cancelled"})
    assert worker.stats.cancelled == 1
    assert "missed once" in history.events[-1].envelope.data.detail
    assert processes_running("sleep 29.75") == []


async def test_the_cancel_bucket_answers_for_one_job(pipe: Pipeline) -> None:
    await pipe.brain.queue.signal_cancel("job-asked", "because")
    assert await pipe.brain.queue.cancel_signal("job-asked") == "because"
    assert await pipe.brain.queue.cancel_signal("job-never-asked") is None
