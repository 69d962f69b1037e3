"""Labels, idempotency keys and batch dispatch (DESIGN §11) through a real `baker up`, its API
and the `baker` CLI as separate processes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import BakerProcess
from tests.e2e.system import System, running_with
from tests.polling import until_sync

TTL = 2  # seconds: short enough to cross in a test, long enough to repeat within


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data = tmp_path_factory.mktemp("control") / "data"
    with running_with(data, {"BAKER_IDEMPOTENCY_TTL": str(TTL)}) as s:
        yield s


@pytest.fixture
def api(system: System) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.url, headers=system.headers, timeout=30) as client:
        yield client


def baker(system: System, *args: str) -> BakerProcess:
    return BakerProcess(*args, env=system.env())


def command(text: str, **more: Any) -> dict[str, Any]:
    return {"type": "command", "payload": {"command": text}, **more}


def ids_with(api: httpx.Client, *labels: str) -> list[str]:
    answer = api.get("/api/jobs", params=[("label", label) for label in labels])
    assert answer.status_code == 200, answer.text
    return [j["id"] for j in answer.json()["jobs"]]


def finished(api: httpx.Client, job_id: str) -> bool:
    return api.get(f"/api/jobs/{job_id}").json()["status"] in ("completed", "failed")


def test_labels_are_stored_shown_and_filter_jobs_through_api_and_cli(
    system: System, api: httpx.Client
) -> None:
    run = uuid.uuid4().hex[:8]
    made = {}
    for team, env in (("infra", "prod"), ("infra", "dev"), ("web", "prod")):
        labels = {"run": run, "team": team, "env": env}
        answer = api.post("/api/jobs", json=command("echo labelled", labels=labels))
        assert answer.status_code == 202, answer.text
        made[(team, env)] = answer.json()["id"]
    one = api.get(f"/api/jobs/{made[('web', 'prod')]}").json()
    assert one["labels"] == {"run": run, "team": "web", "env": "prod"}
    assert ids_with(api, f"run:{run}", "team:infra") == [
        made["infra", "dev"],
        made["infra", "prod"],
    ]
    assert ids_with(api, f"run:{run}", "team:infra", "env:prod") == [made["infra", "prod"]]
    assert ids_with(api, f"run:{run}", "team:nobody") == []
    bad = api.get("/api/jobs", params={"label": "no-colon"})
    assert (bad.status_code, bad.json()["field"]) == (400, "label")
    refused = api.post("/api/jobs", json=command("echo x", labels={"bad key": "v"}))
    assert (refused.status_code, refused.json()["field"]) == (400, "labels.bad key")
    # The CLI reads the read model the projector fills: poll until it has the jobs.
    proc = baker(system, "dispatch", "command", "echo from-cli", "--label", f"run={run}",
                 "--label", "team=cli", "--json")  # fmt: skip
    cli_job = json.loads(proc.wait_for('"id"'))["id"]
    assert proc.wait() == 0

    def listed() -> list[str]:
        jobs = baker(system, "jobs", "--label", f"run={run}", "--label", "team=cli", "--json")
        assert jobs.wait() == 0
        return [j["id"] for j in json.loads(jobs.lines[-1])["jobs"]]

    assert until_sync(lambda: listed() == [cli_job], "the CLI lists the labelled job")
    shown = baker(system, "job", cli_job, "--json")
    assert shown.wait() == 0
    assert json.loads(shown.lines[-1])["labels"] == {"run": run, "team": "cli"}
    assert baker(system, "jobs", "--label", "team").wait() == 2


def test_a_repeated_key_answers_the_first_job_until_the_ttl(api: httpx.Client) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4().hex}"}
    first = api.post("/api/jobs", json=command("echo once"), headers=key)
    assert first.status_code == 202, first.text
    job_id = first.json()["id"]
    again = api.post("/api/jobs", json=command("echo once"), headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == job_id and again.headers["Idempotent-Replayed"] == "true"
    body_key = api.post(
        "/api/jobs", json=command("echo once", idempotencyKey=key["Idempotency-Key"])
    )
    assert (body_key.status_code, body_key.json()["id"]) == (200, job_id)
    other = api.post("/api/jobs", json=command("echo another"), headers=key)
    assert other.status_code == 422 and other.json()["id"] == job_id
    assert other.json()["field"] == "idempotencyKey"
    history = api.get(f"/api/jobs/{job_id}/history").json()["events"]
    assert [e["type"] for e in history].count("JobDispatched") == 1
    # After the TTL the key makes a new job (each repeat before then makes nothing).
    later = until_sync(
        lambda: (r := api.post("/api/jobs", json=command("echo once"), headers=key)).status_code
        == 202 and r, "the key expires", timeout=TTL + 15,
    )  # fmt: skip
    assert later.json()["id"] != job_id


def test_a_batch_dispatches_all_in_order_or_nothing(api: httpx.Client) -> None:
    run = uuid.uuid4().hex[:8]
    jobs = [command(f"echo batch-{i}", labels={"run": run}) for i in range(3)]
    bad = api.post("/api/jobs/batch", json={"jobs": [*jobs, command("")]})
    assert bad.status_code == 400
    assert bad.json()["field"] == "jobs[3].payload.command"
    keyed = api.post("/api/jobs/batch", json={"jobs": jobs}, headers={"Idempotency-Key": "b"})
    assert (keyed.status_code, keyed.json()["field"]) == (400, "Idempotency-Key")
    answer = api.post("/api/jobs/batch", json={"jobs": jobs})
    assert answer.status_code == 202, answer.text
    ids = answer.json()["ids"]
    assert len(set(ids)) == 3
    for i, job_id in enumerate(ids):
        until_sync(lambda j=job_id: finished(api, j), f"{job_id} finishes")
        job = api.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "completed" and job["payload"]["command"] == f"echo batch-{i}"
    assert sorted(ids_with(api, f"run:{run}")) == sorted(ids)  # the refused batch made none


def test_dispatch_from_file_prints_ids_and_names_a_bad_line(
    system: System, api: httpx.Client, tmp_path: Path
) -> None:
    good = tmp_path / "jobs.jsonl"
    lines = [json.dumps(command(f"echo file-{i}")) for i in range(3)]
    good.write_text("\n".join([lines[0], "", *lines[1:]]) + "\n")
    proc = baker(system, "dispatch", "--from-file", str(good), "--json")
    assert proc.wait() == 0, proc.lines
    ids = json.loads(proc.lines[-1])["ids"]
    assert len(ids) == 3
    for job_id in ids:
        until_sync(lambda j=job_id: finished(api, j), f"{job_id} finishes")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(lines[0] + "\n" + json.dumps(command("echo x", timeoutSeconds=0)) + "\n")
    refused = baker(system, "dispatch", "--from-file", str(broken))
    assert refused.wait() == 2
    said = " ".join(" ".join(refused.lines).split())  # (the terminal may wrap the message)
    assert "line 2: timeoutSeconds" in said and "jobs[" not in said, said
    assert baker(system, "dispatch").wait() == 2


def test_a_concurrency_key_holds_jobs_visibly_through_api_cli_and_metrics(
    system: System, api: httpx.Client
) -> None:
    key = f"tenant-{uuid.uuid4().hex[:6]}"
    spec = command("sleep 60", concurrencyKey=key, concurrencyLimit=1)
    first = api.post("/api/jobs", json=spec).json()["id"]
    proc = baker(system, "dispatch", "command", "sleep 60", "--concurrency-key", key,
                 "--concurrency-limit", "1", "--json")  # fmt: skip
    assert proc.wait() == 0, proc.lines
    second = json.loads(proc.lines[-1])["id"]
    third = api.post("/api/jobs", json=spec).json()["id"]
    until_sync(lambda: api.get(f"/api/jobs/{first}").json()["status"] == "running", "first runs")
    for job_id in (second, third):  # held: still queued, with the reason on the row
        job = until_sync(
            lambda j=job_id: (d := api.get(f"/api/jobs/{j}").json()).get("waitReason") and d,
            f"{job_id} shows why it waits",
        )
        assert job["status"] == "dispatched" and job["concurrencyKey"] == key
        assert job["waitReason"] == f"concurrency key '{key}' is at its limit (1 at once)"
    table = baker(system, "jobs", "--status", "dispatched")
    assert table.wait() == 0
    assert any(third in line and "at its limit" in line for line in table.lines), table.lines
    metrics = api.get("/metrics").text
    assert f'baker_jobs_held{{key="{key}"}} 2' in metrics
    # a held job cancelled never runs; cancelling the running one lets the next one start
    assert api.post(f"/api/jobs/{third}/cancel").status_code == 202
    assert api.post(f"/api/jobs/{first}/cancel").status_code == 202
    until_sync(lambda: api.get(f"/api/jobs/{second}").json()["status"] == "running", "2nd runs")
    assert api.post(f"/api/jobs/{second}/cancel").status_code == 202
    for job_id in (first, second, third):
        until_sync(lambda j=job_id: api.get(f"/api/jobs/{j}").json()["status"] == "cancelled")
    kinds = [e["type"] for e in api.get(f"/api/jobs/{third}/history").json()["events"]]
    assert kinds == ["JobDispatched", "JobHeld", "JobCancelRequested", "JobCancelled"]
    bad = api.post("/api/jobs", json=command("echo x", concurrencyLimit=2))
    assert (bad.status_code, bad.json()["field"]) == (400, "concurrencyKey")
