"""Usage and cost end to end (DESIGN §10): agent jobs run by `baker up` against the fake
Messages API, priced from a `BAKER_MODEL_PRICES` file; the job rows, `GET /api/usage` by
model, day and type, and `baker usage` as a table and as JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import BakerProcess
from tests.e2e.system import System, running_with
from tests.fakes.anthropic_server import FakeAnthropic, Reply, text_message, tool_use
from tests.polling import until

# US$ per million tokens; cache reads default to a tenth of the input price (0.2 here).
PRICES = {"my-model": {"input": 2, "output": 10}}
# Per job: call 1 (100 in, 20 out, 1000 cache read) + call 2 (150 in, 10 out).
MY_MODEL_JOB_COST = (100 * 2 + 20 * 10 + 1000 * 0.2 + 150 * 2 + 10 * 10) / 1e6  # 0.001
HAIKU_JOB_COST = (100 * 1 + 20 * 5 + 1000 * 0.1 + 150 * 1 + 10 * 5) / 1e6  # 0.0005, shipped


def reply(request: dict[str, Any]) -> Reply:
    """A tool call first (with cache reads in its usage), then the answer."""
    if len(request["messages"]) == 1:
        first = tool_use("command", {"command": "echo checked"}, text="Checking.", usage=(100, 20))
        usage = {**first.body["usage"], "cache_read_input_tokens": 1000}
        return Reply(200, {**first.body, "usage": usage})
    return text_message("All good.", usage=(150, 10))


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("usage")
    prices = tmp / "prices.json"
    prices.write_text(json.dumps(PRICES))
    with FakeAnthropic(reply) as api:
        env = {
            "ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": api.base_url,
            "BAKER_MODEL_PRICES": str(prices),
        }  # fmt: skip
        with running_with(tmp / "data", env) as s:
            yield s


def client(system: System) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=system.url, headers=system.headers, timeout=30)


async def finished(c: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await c.post("/api/jobs", json=body)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]

    async def done() -> dict[str, Any] | None:
        doc: dict[str, Any] = (await c.get(f"/api/jobs/{job_id}")).json()
        return doc if doc.get("status") in ("completed", "failed") else None

    return await until(done, f"{job_id} finished in the read model", timeout=60)  # type: ignore[no-any-return]


async def run_jobs(system: System) -> list[dict[str, Any]]:
    async with client(system) as c:
        docs = [
            await finished(c, {"type": "agent", "payload": {"prompt": p, "model": m}})
            for p, m in (("one", "my-model"), ("two", "my-model"), ("three", "claude-haiku-4-5"))
        ]
        docs.append(await finished(c, {"type": "command", "payload": {"command": "echo x"}}))
    return docs


@pytest.fixture(scope="module")
def jobs(system: System) -> list[dict[str, Any]]:
    """Three agent jobs on two models and a command job, run once for the module."""
    return asyncio.run(run_jobs(system))


async def test_the_job_row_carries_tokens_cost_and_steps(jobs: list[dict[str, Any]]) -> None:
    first, _, haiku, command = jobs
    assert first["status"] == "completed", first
    assert (first["inputTokens"], first["outputTokens"]) == (250, 30)
    assert (first["cacheReadTokens"], first["cacheWriteTokens"]) == (1000, 0)
    assert first["costUsd"] == pytest.approx(MY_MODEL_JOB_COST)
    assert first["steps"] == 4  # model call, tool call, tool return, model call
    assert haiku["costUsd"] == pytest.approx(HAIKU_JOB_COST)
    assert (command["inputTokens"], command["costUsd"], command["steps"]) == (0, 0, 0)


async def test_usage_by_model_day_and_type(system: System, jobs: list[dict[str, Any]]) -> None:
    async with client(system) as c:
        by_model = (await c.get("/api/usage", params={"groupBy": "model"})).json()
        by_day = (await c.get("/api/usage", params={"groupBy": "day"})).json()
        by_type = (await c.get("/api/usage?groupBy=type")).json()
        history = (await c.get(f"/api/jobs/{jobs[0]['id']}/history")).json()["events"]
    picked = [(r["key"], r["jobs"], r["inputTokens"], r["outputTokens"]) for r in by_model["rows"]]
    assert picked == [("my-model", 2, 500, 60), ("claude-haiku-4-5", 1, 250, 30)]
    assert by_model["rows"][0]["costUsd"] == pytest.approx(2 * MY_MODEL_JOB_COST)
    assert by_model["total"]["jobs"] == 3 and by_model["total"]["calls"] == 6
    total = 2 * MY_MODEL_JOB_COST + HAIKU_JOB_COST
    assert by_model["total"]["costUsd"] == pytest.approx(total)
    # The day is the UTC date of each model call, as its event says.
    calls = [e for e in history if e["type"] == "AgentModelCalled"]
    assert by_day["rows"][0]["key"] == calls[0]["occurredAt"][:10]
    assert sum(r["costUsd"] for r in by_day["rows"]) == pytest.approx(total)
    assert [(r["key"], r["jobs"]) for r in by_type["rows"]] == [("agent", 3)]


async def test_usage_in_a_range_of_days_and_bad_parameters(
    system: System, jobs: list[dict[str, Any]]
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    week_ago = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    async with client(system) as c:
        later = await c.get("/api/usage", params={"since": tomorrow})
        within = await c.get("/api/usage", params={"since": week_ago, "until": tomorrow})
        bad_group = await c.get("/api/usage", params={"groupBy": "week"})
        bad_since = await c.get("/api/usage", params={"since": "last tuesday"})
    assert later.status_code == 200 and later.json()["rows"] == []
    assert within.json()["total"]["jobs"] == 3
    assert bad_group.status_code == 400 and bad_group.json()["field"] == "groupBy"
    assert bad_since.status_code == 400 and bad_since.json()["field"] == "since"
    assert "not a date" in bad_since.json()["error"]


def test_baker_usage_as_a_table_and_as_json(system: System, jobs: list[dict[str, Any]]) -> None:
    table = BakerProcess("usage", env=system.env())
    assert table.wait(timeout=30) == 0, table.lines
    row = next(line for line in table.lines if "my-model" in line)
    assert "0.002000" in row and "500" in row
    assert any("total" in line and "0.002500" in line for line in table.lines), table.lines
    as_json = BakerProcess("usage", "--by", "type", "--json", env=system.env())
    assert as_json.wait(timeout=30) == 0, as_json.lines
    doc = json.loads(as_json.lines[-1])
    assert [(r["key"], r["jobs"]) for r in doc["rows"]] == [("agent", 3)]
    bad = BakerProcess("usage", "--since", "someday", env=system.env())
    assert bad.wait(timeout=30) == 2
    assert any("since: 'someday' is not a date" in line for line in bad.lines), bad.lines


def test_a_daemon_refuses_to_start_with_a_bad_prices_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"my-model": {"input": 3}}')
    env = {"BAKER_MODEL_PRICES": str(path), "BAKER_NATS_URL": "nats://127.0.0.1:1"}
    proc = BakerProcess("worker", env=env)
    assert proc.wait(timeout=30) == 2
    assert any("BAKER_MODEL_PRICES.my-model.output: must be a number" in x for x in proc.lines)
