"""The operator CLI against a running system: dispatch --wait, history, jobs, tail, views."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from tests.e2e.procs import BakerProcess
from tests.e2e.system import System, running


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
