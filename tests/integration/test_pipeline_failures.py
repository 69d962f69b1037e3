"""Failures the pipeline survives and records: dead workers, long jobs, crashes, back-pressure,
stuck and undeliverable jobs, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime

import pytest

from adapters.nats.job_queue import QueueFull
from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import Topology
from domain.specs import parse_job_spec
from domain.wire import DispatchMessage
from services.brain.brain import BrainSettings
from tests.e2e.procs import BakerProcess
from tests.integration.pipeline import Pipeline, running_pipeline, types
from tests.polling import until


def command(text: str, timeout: int | None = None) -> object:
    doc: dict[str, object] = {"type": "command", "payload": {"command": text}}
    if timeout:
        doc["timeoutSeconds"] = timeout
    return parse_job_spec(doc)


def worker_process(pipe: Pipeline) -> BakerProcess:
    return BakerProcess("worker", env={
        "BAKER_NATS_URL": pipe.server.url, "BAKER_ALLOWED_COMMANDS": "sleep,echo",
        "BAKER_ACK_WAIT_SECONDS": str(int(pipe.ack_wait)), "BAKER_HEARTBEAT_SECONDS": "0.5",
    })  # fmt: skip


async def test_a_killed_worker_s_job_completes_on_another_with_attempt_2(
    nats_server: NatsServerProcess,
) -> None:
    async with running_pipeline(nats_server, topology=Topology(ack_wait=2)) as pipe:
        first = worker_process(pipe)
        worker_line = first.wait_for("baker worker worker-")
        first_id = worker_line.split()[2].rstrip(":")
        job = await pipe.brain.dispatcher.dispatch(command("sleep 3"))
        await pipe.wait_job(job.job_id, lambda h: h.state.status == "running")
        first.stop(signal.SIGKILL)
        second = await pipe.start_worker()
        history = await pipe.wait_job(job.job_id, {"completed"}, timeout=30)
    received = [e.envelope.data for e in history.events if e.envelope.type == "JobReceived"]
    assert [(r.attempt, r.worker_id) for r in received] == [(1, first_id), (2, second.id)]
    assert history.events[-1].envelope.data.worker_id == second.id


async def test_in_progress_acks_keep_a_long_job_from_redelivery(
    nats_server: NatsServerProcess,
) -> None:
    async with running_pipeline(nats_server, topology=Topology(ack_wait=1)) as pipe:
        await pipe.start_worker()
        job = await pipe.brain.dispatcher.dispatch(command("sleep 3.5"))  # 3.5 x ack wait
        history = await pipe.wait_job(job.job_id, {"completed"})
        info = await pipe.raw.jsm().consumer_info("BAKER_JOBS", "workers")
    assert types(history) == ["JobDispatched", "JobReceived", "JobStarted", "JobCompleted"]
    assert info.num_redelivered == 0


async def test_max_deliveries_is_recorded_even_by_a_brain_that_was_down(
    nats_server: NatsServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(*_args: object) -> object:
        raise RuntimeError("worker bug")

    monkeypatch.setattr("services.worker.worker.execute", crash)
    async with running_pipeline(nats_server, start_brain=False) as pipe:
        job = await pipe.brain.dispatcher.dispatch(command("echo never"))
        worker = await pipe.start_worker(crash_nak_delay=0.1)
        jsm = pipe.raw.jsm()

        async def advisory_kept() -> bool:
            return (await jsm.stream_info("BAKER_ADVISORIES")).state.messages == 1

        await until(advisory_kept)
        assert worker.stats.crashed == 3
        pipe.tasks.append(asyncio.create_task(pipe.brain.run(pipe.stop)))  # the Brain comes up
        history = await pipe.wait_job(job.job_id, {"failed"})
        assert (await jsm.stream_info("BAKER_JOBS")).state.messages == 0  # given-up msg removed
    assert types(history) == ["JobDispatched"] + ["JobReceived", "JobStarted"] * 3 + ["JobFailed"]
    failed = history.events[-1].envelope.data
    assert failed.reason == "max_deliveries" and "3 deliveries" in failed.error
    trace = history.events[0].envelope.trace_id
    assert trace and history.events[-1].envelope.trace_id == trace  # joins the job's trace


async def test_a_full_queue_refuses_new_jobs_before_recording_them(
    nats_server: NatsServerProcess,
) -> None:
    # 10 places: 9 for waiting jobs, 1 kept for status messages.
    async with running_pipeline(nats_server, topology=Topology(max_queued_jobs=10)) as pipe:
        for _ in range(9):
            await pipe.brain.dispatcher.dispatch(command("echo queued"))
        with pytest.raises(QueueFull, match="queue is full"):
            await pipe.brain.dispatcher.dispatch(command("echo too-many"), job_id="job-overflow")
        history = await pipe.store.load("job", "job-overflow")
        assert pipe.brain.dispatcher.admission.refused == 1
    assert not history.exists  # refused, not accepted: nothing to audit


async def test_a_job_refused_by_jetstream_itself_is_recorded_as_failed(
    nats_server: NatsServerProcess,
) -> None:
    async with running_pipeline(nats_server, topology=Topology(max_queued_jobs=10)) as pipe:
        js = pipe.raw.jetstream()
        for i in range(10):  # filled behind the Brain's back: its admission has not seen it
            await js.publish("baker.jobs.dispatch", b"{}", headers={"Nats-Msg-Id": f"x{i}"})
        pipe.brain.dispatcher.admission = type(pipe.brain.dispatcher.admission)(
            _EmptyLooking(), refresh_every=3600
        )
        with pytest.raises(QueueFull):
            await pipe.brain.dispatcher.dispatch(command("echo too-many"), job_id="job-overflow")
        history = await pipe.store.load("job", "job-overflow")
    assert types(history) == ["JobDispatched", "JobFailed"]
    assert history.events[-1].envelope.data.reason == "dispatch_failed"
    assert "queue is full" in history.events[-1].envelope.data.error


class _EmptyLooking:
    async def fill(self) -> tuple[int, int]:
        return 0, 10


async def test_a_full_queue_still_drains_every_job_it_admitted(
    nats_server: NatsServerProcess,
) -> None:
    """Workers report into the stream the jobs wait in: with the queue at its limit and the
    Brain's ingest down, a worker must wait for room rather than give the job up."""
    topo = Topology(max_queued_jobs=10, ack_wait=30)
    async with running_pipeline(nats_server, topology=topo, start_brain=False) as pipe:
        jobs = [await pipe.brain.dispatcher.dispatch(command("echo ok")) for _ in range(9)]
        js = pipe.raw.jetstream()
        body = json.dumps({"id": "job-other", "status": "running"}).encode()
        await js.publish("baker.jobs.status.job-other", body)  # the 10th place
        jsm = pipe.raw.jsm()
        assert (await jsm.stream_info("BAKER_JOBS")).state.messages == 10
        worker = await pipe.start_worker(concurrency=1)

        async def worker_waits_for_room() -> bool:
            info = await jsm.consumer_info("BAKER_JOBS", "workers")
            return info.num_ack_pending == 1 and info.num_redelivered == 0

        await until(worker_waits_for_room)
        pipe.tasks.append(asyncio.create_task(pipe.brain.run(pipe.stop)))  # ingest drains
        histories = [await pipe.wait_job(j.job_id, {"completed", "failed"}) for j in jobs]
    assert [h.state.status for h in histories] == ["completed"] * 9
    assert worker.stats.crashed == 0
    assert all(types(h) == ["JobDispatched", "JobReceived", "JobStarted", "JobCompleted"]
               for h in histories)  # fmt: skip


async def test_a_silent_job_is_failed_as_stuck_but_a_leased_one_is_not(
    nats_server: NatsServerProcess,
) -> None:
    brain = BrainSettings(stuck_after=1.0, check_every=0.2)
    async with running_pipeline(nats_server, topology=Topology(ack_wait=60), brain=brain) as pipe:
        silent = await pipe.brain.dispatcher.dispatch(command("echo a"))
        leased = await pipe.brain.dispatcher.dispatch(command("echo b"))
        js = pipe.raw.jetstream()
        sub = await js.pull_subscribe_bind(durable="workers", stream="BAKER_JOBS")
        await sub.fetch(2, timeout=5)  # taken by a "worker" that then goes quiet
        for job in (silent, leased):
            body = {"id": job.job_id, "status": "received", "attempt": 1, "workerId": "w-quiet"}
            await js.publish(f"baker.jobs.status.{job.job_id}", json.dumps(body).encode())
        stop_leasing = asyncio.Event()

        async def lease() -> None:
            beat = {
                "service": "worker",
                "instance": "w-quiet",
                "details": {"activeJobs": [leased.job_id]},
            }
            while not stop_leasing.is_set():
                await pipe.raw.publish("baker.system.health", json.dumps(beat).encode())
                await asyncio.sleep(0.2)  # the lease interval of this fake worker

        leasing = asyncio.create_task(lease())
        history = await pipe.wait_job(silent.job_id, {"failed"})
        assert (await pipe.store.load("job", leased.job_id)).state.status == "received"
        stop_leasing.set()
        await leasing
        leased_history = await pipe.wait_job(leased.job_id, {"failed"})
    assert history.events[-1].envelope.data.reason == "stuck"
    assert "stuck in 'received'" in history.events[-1].envelope.data.error
    assert history.events[-1].envelope.trace_id == history.events[0].envelope.trace_id
    assert history.events[0].envelope.trace_id
    assert leased_history.events[-1].envelope.data.reason == "stuck"


async def test_a_dispatched_job_whose_queue_message_is_gone_is_failed(
    nats_server: NatsServerProcess,
) -> None:
    brain = BrainSettings(undeliverable_after=0.3, check_every=0.2)
    async with running_pipeline(nats_server, brain=brain) as pipe:
        job = await pipe.brain.dispatcher.dispatch(command("echo lost"))
        jsm = pipe.raw.jsm()
        await jsm.delete_msg("BAKER_JOBS", (await jsm.stream_info("BAKER_JOBS")).state.last_seq)
        history = await pipe.wait_job(job.job_id, {"failed"})
    assert "never delivered" in history.events[-1].envelope.data.error


async def test_sigterm_lets_running_jobs_finish_within_the_grace_period(
    nats_server: NatsServerProcess,
) -> None:
    async with running_pipeline(nats_server) as pipe:
        worker = await pipe.start_worker(grace=10.0)
        job = await pipe.brain.dispatcher.dispatch(command("sleep 1"))
        await pipe.wait_job(job.job_id, lambda h: h.state.status == "running")
        await pipe.stop_worker(worker)  # returns once the worker has shut down
        assert worker.stats.completed == 1  # finished, reported and acked before it stopped
        history = await pipe.wait_job(job.job_id, {"completed", "failed", "cancelled"})
    assert history.state.status == "completed"


async def test_jobs_still_running_after_the_grace_period_go_back_to_the_queue(
    nats_server: NatsServerProcess,
) -> None:
    async with running_pipeline(nats_server) as pipe:
        first = await pipe.start_worker(grace=0.2)
        job = await pipe.brain.dispatcher.dispatch(command("sleep 2"))
        await pipe.wait_job(job.job_id, lambda h: h.state.status == "running")
        await pipe.stop_worker(first)
        second = await pipe.start_worker()
        history = await pipe.wait_job(job.job_id, {"completed"})
    received = [e.envelope.data for e in history.events if e.envelope.type == "JobReceived"]
    assert [(r.attempt, r.worker_id) for r in received] == [(1, first.id), (2, second.id)]


async def test_the_same_job_is_queued_once_however_often_it_is_sent(
    nats_server: NatsServerProcess,
) -> None:
    async with running_pipeline(nats_server, start_brain=False) as pipe:
        first = await pipe.brain.dispatcher.dispatch(command("echo once"), job_id="job-twice")
        again = await pipe.brain.dispatcher.dispatch(command("echo once"), job_id="job-twice")
        message = DispatchMessage(
            id="job-twice", type="command", payload={"command": "echo once"},
            reply_to="baker.jobs.status.job-twice", created_at=datetime.now(UTC),
        )  # fmt: skip
        await pipe.brain.queue.dispatch(message, {})  # a retried publish: same Nats-Msg-Id
        info = await pipe.raw.jsm().stream_info("BAKER_JOBS")
        history = await pipe.store.load("job", "job-twice")
    assert again.seq == first.seq
    assert info.state.messages == 1
    assert types(history) == ["JobDispatched"]
