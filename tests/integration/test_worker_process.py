"""`baker worker` as a process: its heartbeat lease, SIGTERM with and without time to finish,
and the concurrency limit of a worker."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from nats.aio.msg import Msg

from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import Topology
from domain.specs import parse_job_spec
from tests.e2e.procs import BakerProcess
from tests.integration.pipeline import Pipeline, running_pipeline, types


def command(text: str) -> Any:
    return parse_job_spec({"type": "command", "payload": {"command": text}})


def worker_process(pipe: Pipeline, **env: str) -> BakerProcess:
    return BakerProcess("worker", env={
        "BAKER_NATS_URL": pipe.server.url, "BAKER_ALLOWED_COMMANDS": "sleep,echo",
        "BAKER_ACK_WAIT_SECONDS": str(int(pipe.ack_wait)), "BAKER_HEARTBEAT_SECONDS": "0.3",
        **env,
    })  # fmt: skip


class Beats:
    """Every heartbeat a worker process sends on `baker.system.health`."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def take(self, msg: Msg) -> None:
        doc = json.loads(msg.data)
        if doc.get("service") == "worker":
            self.seen.append(doc)
            self.changed.set()

    async def wait_for(self, check: Any, timeout: float = 20.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for doc in self.seen:
                    if check(doc):
                        return doc
                self.changed.clear()
                await self.changed.wait()


async def test_sigterm_lets_the_running_job_finish_and_the_lease_names_it(
    nats_server: NatsServerProcess,
) -> None:
    async with running_pipeline(nats_server, topology=Topology(ack_wait=30)) as pipe:
        beats = Beats()
        await pipe.raw.subscribe("baker.system.health", cb=beats.take)
        worker = worker_process(pipe)
        worker.wait_for("ready")
        job = await pipe.brain.dispatcher.dispatch(command("sleep 1.5"))
        await pipe.wait_job(job.job_id, lambda h: h.state.status == "running")
        lease = await beats.wait_for(lambda d: job.job_id in d["details"]["activeJobs"])
        code = await asyncio.to_thread(worker.stop, signal.SIGTERM)
        history = await pipe.wait_job(job.job_id, {"completed", "failed"})
        stopping = await beats.wait_for(lambda d: d["status"] == "stopping")
    assert code == 0
    assert types(history) == ["JobDispatched", "JobReceived", "JobStarted", "JobCompleted"]
    assert lease["status"] == "up" and lease["instance"] == stopping["instance"]
    received = history.events[1].envelope.data
    assert received.worker_id == lease["instance"]


async def test_sigterm_past_the_grace_period_hands_the_job_to_another_worker(
    nats_server: NatsServerProcess,
) -> None:
    async with running_pipeline(nats_server, topology=Topology(ack_wait=30)) as pipe:
        first = worker_process(pipe, BAKER_WORKER_GRACE_SECONDS="0.2")
        first.wait_for("ready")
        job = await pipe.brain.dispatcher.dispatch(command("sleep 2"))
        await pipe.wait_job(job.job_id, lambda h: h.state.status == "running")
        code = await asyncio.to_thread(first.stop, signal.SIGTERM)
        second = await pipe.start_worker()
        history = await pipe.wait_job(job.job_id, {"completed"}, timeout=30)
    assert code == 0
    received = [e.envelope.data for e in history.events if e.envelope.type == "JobReceived"]
    assert [r.attempt for r in received] == [1, 2]
    assert received[1].worker_id == second.id != received[0].worker_id


async def test_a_worker_never_runs_more_jobs_than_its_concurrency(
    nats_server: NatsServerProcess,
) -> None:
    async with running_pipeline(nats_server) as pipe:
        jobs = [await pipe.brain.dispatcher.dispatch(command("sleep 0.3")) for _ in range(6)]
        worker = await pipe.start_worker(concurrency=2)
        seen: list[int] = []
        start = worker._start

        def counting_start(msg: Msg) -> None:
            start(msg)
            seen.append(len(worker.running))

        worker._start = counting_start  # type: ignore[method-assign]
        histories = [await pipe.wait_job(j.job_id, {"completed"}) for j in jobs]
    assert len(histories) == 6 and len(seen) == 6
    assert max(seen) == 2  # the limit is reached, never passed
