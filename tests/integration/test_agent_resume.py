"""Durable agent jobs (DESIGN §10): a real `baker worker` SIGKILLed at each step boundary, and
the job resumed by another without repeating a recorded model call or tool return.

The model is the fake Messages API, driven by the real `anthropic` SDK in the worker; the
tool is an `http` call to a counting server. Either one holds the request of the boundary
under test until the worker is dead, so the kill lands exactly there.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections import Counter
from typing import Any

import pytest

from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import Topology
from domain.events import AgentModelCalled, AgentToolCalled, AgentToolReturned, JobReceived
from domain.specs import parse_job_spec
from tests.e2e.procs import BakerProcess
from tests.fakes.anthropic_server import FakeAnthropic, Reply, text_message, tool_use
from tests.fakes.http_base import FakeHttpServer, Request, Response
from tests.integration.pipeline import Pipeline, running_pipeline


class Hold:
    """Holds one request until released, and says when it arrived."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.released = threading.Event()

    def wait_here(self) -> None:
        self.arrived.set()
        self.released.wait(timeout=30)


class CountingTool(FakeHttpServer):
    def __init__(self, hold: Hold | None) -> None:
        super().__init__()
        self.calls = 0
        self._hold = hold

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first and self._hold is not None:
            self._hold.wait_here()
        return Response.json(200, {"disk": "fine"})


class Model(FakeAnthropic):
    """One tool use, then the answer; counts requests by conversation position."""

    def __init__(self, tool_url: str, hold_at: int | None, hold: Hold) -> None:
        self.by_position: Counter[int] = Counter()
        self._tool_url = tool_url
        self._hold_at, self._hold = hold_at, hold
        super().__init__(self._reply)

    def _reply(self, request: dict[str, Any]) -> Reply:
        position = len(request["messages"])
        self.by_position[position] += 1
        if position == self._hold_at and self.by_position[position] == 1:
            self._hold.wait_here()
        if position == 1:
            return tool_use("http", {"url": f"{self._tool_url}/disk"}, text="Let me look.")
        return text_message("The disk is fine.")


def worker(pipe: Pipeline, api: Model, tool: CountingTool) -> BakerProcess:
    return BakerProcess("worker", env={
        "BAKER_NATS_URL": pipe.server.url, "BAKER_ACK_WAIT_SECONDS": str(int(pipe.ack_wait)),
        "ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": api.base_url,
        "BAKER_HTTP_ALLOWED_HOSTS": "127.0.0.1", "BAKER_HEARTBEAT_SECONDS": "0.5",
    })  # fmt: skip


AGENT = parse_job_spec({"type": "agent", "payload": {"prompt": "How is the disk?"}})


@pytest.mark.parametrize(
    ("boundary", "model_calls", "tool_runs"),
    [
        # killed while model call 1 is in flight: nothing recorded, so it is made again
        ("model-1", {1: 2, 3: 1}, 1),
        # killed after model call 1 is recorded, while its tool runs: the call is not made
        # again; the tool (called, never returned) runs again
        ("tool", {1: 1, 3: 1}, 2),
        # killed after the tool's return is recorded, while model call 2 is in flight
        ("model-2", {1: 1, 3: 2}, 1),
    ],
)
async def test_a_worker_killed_at_a_step_boundary_is_resumed_without_repeating_a_recorded_step(
    nats_server: NatsServerProcess, boundary: str, model_calls: dict[int, int], tool_runs: int
) -> None:
    hold = Hold()
    with CountingTool(hold if boundary == "tool" else None) as tool:
        hold_at = {"model-1": 1, "model-2": 3}.get(boundary)
        with Model(tool.url, hold_at, hold) as api:
            async with running_pipeline(nats_server, topology=Topology(ack_wait=2)) as pipe:
                first = worker(pipe, api, tool)
                first.wait_for("ready")
                job = await pipe.brain.dispatcher.dispatch(AGENT)
                await asyncio.to_thread(hold.arrived.wait, 30)
                first.stop(signal.SIGKILL)
                hold.released.set()
                second = worker(pipe, api, tool)
                try:
                    history = await pipe.wait_job(job.job_id, {"completed", "failed"}, 40)
                finally:
                    second.stop(signal.SIGTERM)
    events = [s.envelope.data for s in history.events]
    assert history.state.status == "completed", events[-1]
    assert events[-1].result["text"] == "The disk is fine."
    assert dict(api.by_position) == model_calls
    assert tool.calls == tool_runs
    steps = [e for e in events if isinstance(e, AgentModelCalled | AgentToolCalled
                                              | AgentToolReturned)]  # fmt: skip
    assert [(type(e).__name__, e.step) for e in steps] == [
        ("AgentModelCalled", 1), ("AgentToolCalled", 2), ("AgentToolReturned", 3),
        ("AgentModelCalled", 4),
    ]  # fmt: skip
    assert [e.attempt for e in events if isinstance(e, JobReceived)] == [1, 2]
    result = events[-1].result
    assert result["steps"] == 4 and result["iterations"] == 2
    assert result["usage"]["inputTokens"] == 20  # both recorded calls, counted once each
