"""Priorities and queue pause end to end through `baker up` (DESIGN §11): the API, the CLI,
`/metrics` lanes, and the queue's events."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.procs import BakerProcess
from tests.e2e.system import System, running
from tests.polling import until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running(tmp_path_factory.mktemp("queue") / "data") as s:
        yield s


def baker(system: System, *args: str) -> list[str]:
    proc = BakerProcess(*args, env=system.env())
    assert proc.wait(timeout=30) == 0, proc.lines
    return proc.lines


def metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.rsplit(" ", 1)[1])


async def test_pause_priority_metrics_and_resume_through_cli_and_api(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.url, headers=system.headers, timeout=30) as c:
        bad = await c.post("/api/jobs", json={"type": "command", "payload": {"command": "ls"},
                                              "priority": "urgent"})  # fmt: skip
        assert bad.status_code == 400 and "priority" in bad.text, bad.text
        bad = await c.post("/api/queue/pause", json={"reason": 5})
        assert bad.status_code == 400 and bad.json()["field"] == "reason", bad.text

        assert baker(system, "queue", "pause", "--reason", "maintenance")[-1] == "queue paused"
        again = baker(system, "queue", "pause")
        assert again[-1] == "queue paused (it was already)"
        dispatched = baker(system, "dispatch", "command", "echo hi", "--priority", "high",
                           "--json")  # fmt: skip
        job_id = json.loads(dispatched[-1])["id"]
        plain = await c.post("/api/jobs", json={"type": "command", "payload": {"command": "ls"}})
        plain_id = plain.json()["id"]

        async def lanes_show_both() -> bool:
            doc = (await c.get("/api/queue")).json()
            return doc["lanes"]["high"]["queued"] == 1 and doc["lanes"]["normal"]["queued"] == 1

        await until(lanes_show_both)
        doc = (await c.get("/api/queue")).json()
        assert (doc["state"], doc["by"], doc["reason"]) == ("paused", "api", "maintenance")
        metrics = (await c.get("/metrics")).text
        assert metric(metrics, 'baker_queue_lane_depth{lane="high"}') == 1
        assert metric(metrics, 'baker_queue_lane_depth{lane="normal"}') == 1
        assert metric(metrics, 'baker_queue_lane_depth{lane="low"}') == 0
        assert metric(metrics, "baker_queue_paused") == 1
        table = baker(system, "queue")
        assert any(
            line.startswith("queue paused since") and line.endswith("by api: maintenance")
            for line in table
        ), table
        assert any(re.search(r"\bhigh\W+1\W", line) for line in table), table
        for job in (job_id, plain_id):
            assert (await c.get(f"/api/jobs/{job}")).json()["status"] == "dispatched"

        assert baker(system, "queue", "resume")[-1] == "queue running"

        async def done(job: str) -> bool:
            return (await c.get(f"/api/jobs/{job}")).json()["status"] == "completed"

        await until(lambda: done(job_id))
        await until(lambda: done(plain_id))
        history = (await c.get(f"/api/jobs/{job_id}/history")).json()
        first = history["events"][0]
        assert first["data"]["priority"] == "high"
        assert metric((await c.get("/metrics")).text, "baker_queue_paused") == 0
    lines = baker(system, "lifecycle", "queue")
    assert any("QueuePaused" in line for line in lines), lines
