"""Approvals, fork and rerun of agent jobs (DESIGN §10) end to end: `baker up --workers 0`
(the Brain with its API) and a `baker worker` process beside it, the worker's real `anthropic`
SDK against the fake Messages API; answered with `baker approve` and the HTTP API."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.procs import BakerProcess
from tests.e2e.system import System, running_with
from tests.fakes.anthropic_server import FakeAnthropic, Reply, text_message, tool_use
from tests.fakes.http_base import FakeHttpServer, Request, Response
from tests.polling import until


class CountingTool(FakeHttpServer):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.calls += 1
        return Response.json(200, {"disk": "fine"})


class Model(FakeAnthropic):
    """One `http` tool use, then the answer; counts requests by conversation position."""

    def __init__(self, tool_url: str) -> None:
        self.by_position: Counter[int] = Counter()
        self.tool_url = tool_url
        super().__init__(self._reply)

    def _reply(self, request: dict[str, Any]) -> Reply:
        position = len(request["messages"])
        self.by_position[position] += 1  # (called under the fake's lock)
        if position == 1:
            return tool_use("http", {"url": f"{self.tool_url}/disk"}, text="Let me look.")
        return text_message("The disk is fine.")


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[Model, CountingTool]]:
    with CountingTool() as tool, Model(tool.url) as model:
        yield model, tool


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, fakes: tuple[Model, CountingTool]
) -> Iterator[System]:
    model, _ = fakes
    env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": model.base_url,
           "BAKER_HTTP_ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
    with running_with(tmp_path_factory.mktemp("agent") / "data", env, workers=0) as s:
        worker = BakerProcess("worker", env={**s.env(), **env, "BAKER_LOG_LEVEL": "INFO"})
        try:
            worker.wait_for("ready")
            yield s
        finally:
            assert worker.stop(signal.SIGTERM, timeout=60) == 0


def client(system: System) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=system.url, headers=system.headers, timeout=30)


async def history(c: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    answer = await c.get(f"/api/jobs/{job_id}/history")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["events"])


async def until_event(c: httpx.AsyncClient, job_id: str, kind: str) -> list[dict[str, Any]]:
    async def seen() -> list[dict[str, Any]] | None:
        events = await history(c, job_id)
        return events if any(e["type"] == kind for e in events) else None

    found: list[dict[str, Any]] = await until(seen, f"{kind} of {job_id}", timeout=40)
    return found


async def agent_job(c: httpx.AsyncClient, **payload: Any) -> str:
    body = {"type": "agent", "payload": {"prompt": "How is the disk?", **payload}}
    answer = await c.post("/api/jobs", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def cli(system: System, *args: str) -> tuple[int, list[str]]:
    proc = BakerProcess(*args, env=system.env())
    code = proc.wait(60)
    return code, proc.lines


async def test_a_tool_call_waits_for_approval_and_runs_once_approved(
    system: System, fakes: tuple[Model, CountingTool]
) -> None:
    model, tool = fakes
    before_tool, before_first = tool.calls, model.by_position[1]
    async with client(system) as c:
        job_id = await agent_job(c, approve=["http"])
        events = await until_event(c, job_id, "AgentApprovalRequested")
        asked = next(e for e in events if e["type"] == "AgentApprovalRequested")["data"]
        assert asked["tool"] == "http" and tool.calls == before_tool  # not run before the answer
        code, lines = cli(system, "approve", job_id, "--note", "looks safe")
        assert code == 0, lines
        assert any(job_id in line and "approved" in line for line in lines)
        events = await until_event(c, job_id, "JobCompleted")
        again = await c.post(f"/api/jobs/{job_id}/approve", json={"approve": True})
    assert again.status_code == 409 and "not waiting" in again.json()["error"]
    types = [e["type"] for e in events]
    assert types.index("AgentApprovalGranted") < types.index("AgentToolCalled")
    assert tool.calls == before_tool + 1
    assert model.by_position[1] == before_first + 1  # the first call was not made again
    received = [e["data"]["attempt"] for e in events if e["type"] == "JobReceived"]
    assert received == [1, 2]  # queued again after the answer, as the next attempt
    assert events[-1]["data"]["result"]["text"] == "The disk is fine."
    assert "TransitionRejected" not in types  # every report fitted the lifecycle


async def test_a_denied_call_reaches_the_model_as_an_error_and_never_runs(
    system: System, fakes: tuple[Model, CountingTool]
) -> None:
    model, tool = fakes
    before_tool = tool.calls
    async with client(system) as c:
        job_id = await agent_job(c, approve=["http"])
        events = await until_event(c, job_id, "AgentApprovalRequested")
        use = next(e for e in events if e["type"] == "AgentApprovalRequested")["data"]["toolUseId"]
        body = {"toolUseId": use, "approve": False, "note": "not today"}
        denied = await c.post(f"/api/jobs/{job_id}/approve", json=body)
        assert denied.status_code == 202, denied.text
        events = await until_event(c, job_id, "JobCompleted")
    assert tool.calls == before_tool
    returned = next(e for e in events if e["type"] == "AgentToolReturned")["data"]
    assert returned["isError"] and returned["output"] == "denied by an operator: not today"
    last_request = next(r for r in reversed(model.requests) if len(r["messages"]) == 3)
    result_block = last_request["messages"][2]["content"][0]
    assert result_block["is_error"] and "not today" in json.dumps(result_block)


async def test_a_fork_continues_from_a_step_without_repeating_its_model_calls(
    system: System, fakes: tuple[Model, CountingTool]
) -> None:
    model, tool = fakes
    async with client(system) as c:
        source = await agent_job(c)
        await until_event(c, source, "JobCompleted")
        first_calls, third_calls, tool_calls = (
            model.by_position[1],
            model.by_position[3],
            tool.calls,
        )
        answer = await c.post(f"/api/jobs/{source}/fork",
                              json={"fromStep": 3, "system": "Be brief."})  # fmt: skip
        assert answer.status_code == 202, answer.text
        fork = answer.json()
        assert fork["forkOf"] == {"jobId": source, "step": 3}
        events = await until_event(c, fork["id"], "JobCompleted")
        bad = await c.post(f"/api/jobs/{source}/fork", json={"fromStep": 99})
    assert bad.status_code == 400 and "fromStep" in bad.json()["error"]
    dispatched = events[0]["data"]
    assert dispatched["forkOf"] == {"jobId": source, "step": 3}
    assert [s["type"] for s in dispatched["forkedSteps"]] == [
        "AgentModelCalled", "AgentToolCalled", "AgentToolReturned",
    ]  # fmt: skip
    assert model.by_position[1] == first_calls and tool.calls == tool_calls  # nothing repeated
    assert model.by_position[3] == third_calls + 1
    assert model.requests[-1]["system"] == "Be brief."
    own = [e["data"]["step"] for e in events if e["type"] == "AgentModelCalled"]
    assert own == [4]  # numbered after the copied steps
    assert events[-1]["data"]["result"]["text"] == "The disk is fine."


async def test_rerun_starts_the_same_spec_again_as_a_new_job(system: System) -> None:
    async with client(system) as c:
        answer = await c.post("/api/jobs", json={"type": "command",
                                                 "payload": {"command": "echo again"}})  # fmt: skip
        source = answer.json()["id"]
        await until_event(c, source, "JobCompleted")
        code, lines = cli(system, "rerun", source, "--json")
        assert code == 0, lines
        rerun = json.loads(lines[-1])
        assert rerun["rerunOf"] == source and rerun["id"] != source
        events = await until_event(c, rerun["id"], "JobCompleted")
        missing = await c.post("/api/jobs/job-nothere/rerun")
    assert events[0]["data"]["rerunOf"] == source
    assert events[0]["data"]["payload"] == {"command": "echo again"}
    assert missing.status_code == 404


async def test_a_budget_fails_the_job_before_the_call_that_would_pass_it(
    system: System, fakes: tuple[Model, CountingTool]
) -> None:
    model, _ = fakes
    code, lines = cli(system, "dispatch", "agent", "How is the disk?", "--max-total-tokens", "20",
                      "--json")  # fmt: skip
    assert code == 0, lines
    job_id = json.loads(lines[-1])["id"]
    third = model.by_position[3]
    async with client(system) as c:
        events = await until_event(c, job_id, "JobFailed")
    types = [e["type"] for e in events]
    assert types[-2:] == ["JobBudgetExceeded", "JobFailed"]
    exceeded, failed = events[-2]["data"], events[-1]["data"]
    # 15 tokens used by the first call; the second carries at least those 15 again
    assert exceeded == {"limit": "maxTotalTokens", "allowed": 20.0, "used": 15.0, "projected": 30.0}
    assert failed["reason"] == "budget_exceeded" and "budget exceeded" in failed["error"]
    assert model.by_position[3] == third  # the call that would pass it was never made
