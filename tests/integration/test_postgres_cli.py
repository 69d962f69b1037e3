"""The read-model commands as separate `baker` processes on a real nats-server and a real
PostgreSQL (`BAKER_DB=postgresql://…`): `rebuild` (whole, and one projection) swaps in a new
schema generation, `verify` finds drift and passes after the repair, `jobs --as-of` folds back
to a mid-range sequence, `job` reads one job."""

from __future__ import annotations

import json

import psycopg

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from domain.commands import DispatchJob, RecordStatus
from domain.specs import parse_job_spec
from services.executor import CommandExecutor
from tests.integration.test_readmodel_cli import cli
from tests.support.postgres import postgres_url

__all__ = ["postgres_url"]
SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})


async def test_rebuild_verify_and_as_of_through_the_cli_on_postgresql(
    nats_server: NatsServerProcess, provisioned: Client, postgres_url: str
) -> None:
    store = JetStreamEventStore(provisioned)
    executor = CommandExecutor(store)
    for i in range(20):
        await executor.execute("job", f"job-c{i}", DispatchJob(spec=SPEC), new=True)
    mid = await store.head_seq()
    for i in range(20):
        await executor.execute("job", f"job-c{i}", RecordStatus(status="running", attempt=1))
    head = await store.head_seq()

    full = await cli(nats_server, postgres_url, "rebuild", "--json")
    assert full.returncode == 0, full.stderr
    built = json.loads(full.stdout)
    assert (built["generation"], built["lastSeq"], built["previous"]) == ("baker_g1", head, None)

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE baker_g1.jobs SET status = 'failed' WHERE id = 'job-c3'")
    drift = await cli(nats_server, postgres_url, "verify", "--json")
    assert drift.returncode != 0, drift.stdout
    report = json.loads(drift.stdout)
    assert report["ok"] is False and [d["table"] for d in report["diffs"]] == ["jobs"]

    jobs_only = await cli(nats_server, postgres_url, "rebuild", "--projection", "jobs", "--json")
    assert jobs_only.returncode == 0, jobs_only.stderr
    repaired = json.loads(jobs_only.stdout)
    assert (repaired["generation"], repaired["previous"]) == ("baker_g2", "baker_g1")
    check = await cli(nats_server, postgres_url, "verify", "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["ok"] is True, check.stdout

    then = await cli(nats_server, postgres_url, "jobs", "--as-of", str(mid), "--json")
    assert then.returncode == 0, then.stderr
    assert {j["status"] for j in json.loads(then.stdout)["jobs"]} == {"dispatched"}
    now = await cli(nats_server, postgres_url, "jobs", "--json", "--limit", "100")
    assert now.returncode == 0, now.stderr
    assert len(json.loads(now.stdout)["jobs"]) == 20
    one = await cli(nats_server, postgres_url, "job", "job-c3", "--json")
    assert one.returncode == 0 and json.loads(one.stdout)["status"] == "running", one.stdout
    await store.close()


async def test_an_unreachable_postgresql_read_model_is_one_clear_line(
    nats_server: NatsServerProcess,
) -> None:
    url = "postgresql://postgres:sekrit@127.0.0.1:1/nope"  # nothing listens on port 1
    for args in (("jobs",), ("verify",)):
        got = await cli(nats_server, url, *args)
        said = " ".join((got.stdout + got.stderr).split())
        assert got.returncode == 1, said
        assert "the read model at postgresql://postgres@127.0.0.1:1/nope is unreachable" in said
        assert "Connection refused" in said
        assert "sekrit" not in said and "Traceback" not in said
