"""The operator CLI against a running system: dispatch --wait, history, jobs, tail, views."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import pytest

from tests.e2e.procs import BakerProcess
from tests.e2e.system import System, running
from tests.fakes.mcp_server import FakeMcp, tool
from tests.polling import until_sync


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running(tmp_path_factory.mktemp("cli") / "data") as s:
        yield s


def baker(system: System, *args: str) -> BakerProcess:
    return BakerProcess(*args, env=system.env())


def test_dispatch_wait_follows_the_job_and_exits_0(system: System) -> None:
    proc = baker(system, "dispatch", "command", "echo from-the-cli", "--wait")
    proc.wait_for("JobCompleted")
    assert proc.wait() == 0
    assert any("from-the-cli" in line for line in proc.lines)


def test_dispatch_wait_exits_1_when_the_job_fails(system: System) -> None:
    proc = baker(system, "dispatch", "command", "ls /no/such/place", "--wait")
    proc.wait_for("JobFailed")
    assert proc.wait() == 1


def test_dispatch_rejections_and_bad_arguments_exit_2(system: System) -> None:
    refused = baker(system, "dispatch", "http", "ftp://example.org")
    refused.wait_for("payload.url")
    assert refused.wait() == 2
    bad = baker(system, "dispatch", "agent")
    assert bad.wait() == 2  # argparse: the prompt is missing
    assert baker(system, "jobs", "--limit", "0").wait() == 2
    assert baker(system, "dispatch", "http", "http://x", "--data", "{nope").wait() == 2


def test_history_as_timeline_json_and_jsonl(system: System) -> None:
    proc = baker(system, "dispatch", "command", "echo history", "--json")
    job_id = json.loads(proc.wait_for('"id"'))["id"]
    assert proc.wait() == 0
    follow = baker(system, "dispatch", "command", "echo wait-for-it", "--wait")
    assert follow.wait() == 0  # by now the earlier job has finished too
    table = baker(system, "history", job_id)
    table.wait_for("JobCompleted")
    assert table.wait() == 0
    assert any("JobDispatched" in line for line in table.lines)
    jsonl = baker(system, "history", job_id, "--jsonl")
    assert jsonl.wait() == 0
    docs = [json.loads(line) for line in jsonl.lines if line.startswith("{")]
    assert [d["version"] for d in docs] == [1, 2, 3, 4]
    assert baker(system, "history", "job-nobody").wait() == 1


def test_jobs_from_the_read_model(system: System) -> None:
    env = {**system.env(), "BAKER_DB": str(system.data_dir / "readmodel.db")}
    proc = BakerProcess("jobs", "--status", "completed", "--json", env=env)
    doc = json.loads(proc.wait_for('"jobs"'))
    assert proc.wait() == 0
    assert doc["jobs"] and {j["status"] for j in doc["jobs"]} == {"completed"}


def test_tail_follows_new_events(system: System) -> None:
    tail = baker(system, "tail", "--aggregate", "job", "--json")
    tail.wait_for("following events")
    baker(system, "dispatch", "command", "echo tailed").wait()
    line = tail.wait_for('"JobCompleted"')
    assert json.loads(line)["type"] == "JobCompleted"
    assert tail.stop(signal.SIGINT) in (0, 130)


@pytest.mark.parametrize("view", ["health", "extensions", "handoff"])
def test_system_views(system: System, view: str) -> None:
    proc = baker(system, view, "--json")
    doc = json.loads(proc.wait_for("{"))
    assert proc.wait() == 0
    assert isinstance(doc, dict)


def api_get(system: System, path: str) -> Any:
    answer = httpx.get(f"{system.url}{path}", headers=system.headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def dispatched(system: System, command: str, wait: bool = False) -> str:
    """Dispatch with the CLI; with `wait`, return once the job has completed."""
    if wait:
        proc = baker(system, "dispatch", "command", command, "--wait")
        job_id = proc.wait_for("dispatched ").split()[1].rstrip(";")  # "dispatched <id>; …"
    else:
        proc = baker(system, "dispatch", "command", command, "--json")
        job_id = json.loads(proc.wait_for('"id"'))["id"]
    assert proc.wait() == 0
    return str(job_id)


def test_cancel_a_running_job_then_refused_once_it_is_finished(system: System) -> None:
    job_id = dispatched(system, "sleep 20")
    until_sync(lambda: api_get(system, f"/api/jobs/{job_id}")["status"] == "running", "running")
    cancel = baker(system, "cancel", job_id)
    assert cancel.wait() == 0
    assert cancel.lines == [f"cancel requested for {job_id}"]
    until_sync(lambda: api_get(system, f"/api/jobs/{job_id}")["status"] == "cancelled", "cancelled")
    again = baker(system, "cancel", job_id)
    assert again.wait() == 1
    said = " ".join(" ".join(again.lines).split())
    assert "409" in said and "terminal" in said


def test_tail_from_a_sequence_filtered_by_id_and_by_type(system: System) -> None:
    other_id = dispatched(system, "echo other", wait=True)
    start = api_get(system, f"/api/jobs/{other_id}/history")["events"][0]["seq"]
    mine = dispatched(system, "echo mine", wait=True)
    history = api_get(system, f"/api/jobs/{mine}/history")["events"]

    by_id = baker(system, "tail", "--from", str(start), "--id", mine, "--json")
    by_id.wait_for('"JobCompleted"')
    assert by_id.stop(signal.SIGINT) in (0, 130)
    docs = [json.loads(line) for line in by_id.lines if line.startswith("{")]
    assert [(d["seq"], d["aggregateId"]) for d in docs] == [(e["seq"], mine) for e in history]

    by_type = baker(system, "tail", "--from", str(start), "--type", "JobCompleted", "--json")
    by_type.wait_for(mine)
    assert by_type.stop(signal.SIGINT) in (0, 130)
    docs = [json.loads(line) for line in by_type.lines if line.startswith("{")]
    assert {d["type"] for d in docs} == {"JobCompleted"}
    assert {other_id, mine} <= {d["aggregateId"] for d in docs}


def table(system: System, *args: str) -> list[str]:
    proc = baker(system, *args)
    assert proc.wait() == 0, proc.lines
    return proc.lines


def row_with(lines: list[str], *cells: str) -> str:
    found = [line for line in lines if all(cell in line for cell in cells)]
    assert found, f"no row with {cells} in:\n" + "\n".join(lines)
    return found[0]


def test_health_as_a_table(system: System) -> None:
    brain = api_get(system, "/brain/state")["instance"]
    lines = table(system, "health")
    assert lines[0].strip() == "service health"
    row_with(lines, "service", "instance", "status", "since", "last seen")
    row_with(lines, "brain", brain, "up")
    row_with(lines, "worker", "up")
    row_with(lines, "check", "status", "detail")
    row_with(lines, "nats", "healthy", "server=127.0.0.1:")
    row_with(lines, "readModel", "healthy", "lag=")


async def test_extensions_as_a_table(system: System) -> None:
    announce = {"id": "ext-cli-weather", "name": "weather", "version": "2.1.0", "mcpUrl": ""}
    with FakeMcp([tool("forecast")]) as mcp:
        announce["mcpUrl"] = mcp.url
        nc = await nats.connect(system.nats_as("extension"))
        # Heartbeats as a live extension sends them, so a slow CLI start on a busy machine
        # does not find it already offline (three missed 1 s beats).
        beating = asyncio.create_task(_heartbeats(nc, "ext-cli-weather"))
        try:
            await nc.publish("baker.extensions.announce", json.dumps(announce).encode())
            await nc.flush()
            listed = await asyncio.to_thread(
                until_sync,
                lambda: api_get(system, "/api/extensions")["extensions"],
                "the extension registered",
                timeout=30,
            )
            lines = await asyncio.to_thread(table, system, "extensions")
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            await nc.close()
    assert [e["id"] for e in listed] == ["ext-cli-weather"]
    assert lines[0].strip() == "registered extensions"
    row_with(lines, "id", "name", "version", "status", "tools", "since")
    row_with(lines, "ext-cli-weather", "weather", "2.1.0", "online")


def test_handoff_as_a_table(system: System) -> None:
    doc = api_get(system, "/api/system/handoff")
    lines = table(system, "handoff")
    assert lines[0] == f"active brain: {doc['active']['instance']}  generation: {doc['generation']}"
    assert doc["generation"] >= 1
    row_with(lines, "id", "status", "from", "to", "generation", "requested")


def test_events_searches_the_read_model(system: System) -> None:
    job_id = dispatched(system, "echo find-me", wait=True)
    as_json = baker(system, "events", "--job", job_id, "--json")
    doc = json.loads(as_json.wait_for('"events"'))
    assert as_json.wait() == 0
    history = api_get(system, f"/api/jobs/{job_id}/history")["events"]
    assert [e["seq"] for e in doc["events"]] == [e["seq"] for e in history]
    lines = table(system, "events", "--job", job_id, "--type", "JobCompleted")
    assert lines[0].strip() == "1 job events"
    row_with(lines, "seq", "job", "time", "event", "attempt", "worker", "detail")
    row_with(lines, str(history[-1]["seq"]), job_id, "JobCompleted")
    bad = baker(system, "events", "--since", "yesterday")
    assert bad.wait() == 2
    assert "since: 'yesterday' is not an ISO-8601 time" in " ".join(" ".join(bad.lines).split())


async def _heartbeats(nc: Any, ext_id: str) -> None:
    while True:
        await nc.publish("baker.extensions.heartbeat", json.dumps({"id": ext_id}).encode())
        # Not synchronisation: this stands in for the extension's own 0.5 s beat interval,
        # so that the monitor keeps it online while the test reads it.
        await asyncio.sleep(0.5)
