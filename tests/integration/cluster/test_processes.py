"""DESIGN §13 end to end with separate processes: a Brain, a worker, a `baker projector` into a
real PostgreSQL and a `baker api`, each a `baker` process of its own on a real 3-node cluster
(`BAKER_NATS_URL` listing every node, each process starting from another, `BAKER_REPLICAS=3`).
The `BAKER_EVENTS` leader is SIGKILLed while jobs POSTed to the Brain run: every job completes,
`baker api` reads each one completed from the PostgreSQL read model, and `baker verify` finds
that read model equal to a rebuild from the log. Twice: with the leaders where the cluster put
them, and with the leaders of the event log, the job queue and the Brain's lease all on the
Brain's own server, which is the one killed (the Brain reconnects, keeps its lease and goes
on)."""

from __future__ import annotations

import asyncio
import signal
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from adapters.nats.client import Client
from adapters.nats.cluster import LocalCluster
from adapters.nats.streams import EVENTS_STREAM, JOBS_STREAM, LEADER_STREAM
from tests.e2e.procs import BakerProcess, port_of, started
from tests.integration.cluster.conftest import lead_on, leader_of
from tests.polling import until
from tests.support.postgres import postgres_url

pytestmark = pytest.mark.cluster
__all__ = ["postgres_url"]
JOB = {"type": "command", "payload": {"command": "echo hi"}}


async def post_jobs(client: httpx.AsyncClient, url: str, count: int) -> list[str]:
    ids: list[str] = []
    for _ in range(count):
        answer = await client.post(f"{url}/api/jobs", json=JOB)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    return ids


@pytest.mark.parametrize("leaders", ["anywhere", "on the brain's server"])
async def test_separate_processes_on_a_cluster_and_postgresql_lose_nothing_when_a_node_dies(
    cluster: LocalCluster, admin: Client, postgres_url: str, tmp_path: Path, leaders: str
) -> None:
    a, b, c = cluster.names

    def env(first: str, role: str) -> dict[str, str]:
        return {
            "BAKER_NATS_URL": cluster.url_from(first), "BAKER_REPLICAS": "3",
            "BAKER_DB": postgres_url, "BAKER_DATA_DIR": f"{tmp_path}/{role}",
            "BAKER_API_PORT": "0", "BAKER_LOG_LEVEL": "WARNING",
        }  # fmt: skip

    with ExitStack() as running:
        procs: dict[str, BakerProcess] = {}
        brain = procs["brain"] = running.enter_context(started("brain", env=env(a, "brain")))
        brain_url = f"http://127.0.0.1:{await asyncio.to_thread(port_of, brain)}"
        procs["worker"] = running.enter_context(started("worker", env=env(b, "worker")))
        projector = running.enter_context(started("projector", env=env(c, "projector")))
        procs["projector"] = projector
        await asyncio.to_thread(projector.wait_for, "baker projector", 60)
        api_env = {**env(b, "api"), "BAKER_BRAIN_URL": brain_url}
        api = procs["api"] = running.enter_context(started("api", env=api_env))
        api_url = f"http://127.0.0.1:{await asyncio.to_thread(port_of, api)}"
        async with httpx.AsyncClient(timeout=60) as client:
            ids = await post_jobs(client, brain_url, 100)
            if leaders != "anywhere":
                for stream in (EVENTS_STREAM, JOBS_STREAM, LEADER_STREAM):
                    await lead_on(admin, stream, a)
            victim = await leader_of(admin, EVENTS_STREAM)
            assert leaders == "anywhere" or victim == a
            cluster.kill(victim)
            ids += await post_jobs(client, brain_url, 100)  # through the election
            assert await leader_of(admin, EVENTS_STREAM) != victim

            pending: dict[str, str] = {}

            async def all_completed() -> bool:
                for job_id in ids:
                    got = await client.get(f"{api_url}/api/jobs/{job_id}")
                    if got.status_code != 200 or got.json()["status"] != "completed":
                        pending[job_id] = f"{got.status_code} {got.text[:300]}"
                        return False
                    pending.pop(job_id, None)
                return True

            try:
                await until(all_completed, "baker api reads every job completed", timeout=120)
            except AssertionError as failed:  # what each part was doing, for a rare failure
                raise AssertionError(
                    f"{failed}\nnot completed: {pending}\n{_outputs(procs)}"
                ) from None
        check = BakerProcess("verify", env=env(c, "verify"))
        await asyncio.to_thread(check.wait_for, "read model matches the event log", 120)
        assert await asyncio.to_thread(check.wait, 60) == 0
        for proc in (api, projector, brain):
            code = await asyncio.to_thread(proc.stop, signal.SIGTERM, 60)
            assert code == 0, "\n".join(proc.lines)


def _outputs(procs: dict[str, BakerProcess]) -> str:
    return "\n".join(
        f"--- {name} (exit {proc.proc.poll()}):\n" + "\n".join(proc.lines[-40:])
        for name, proc in procs.items()
    )
