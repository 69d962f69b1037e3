"""Delayed and retried jobs through a real server, a Brain and workers (DESIGN §11): a failing
command retried then failed for good, its events in order; a delayed job received on time
(lateness measured, with generous bounds); a Brain restarted while jobs wait still runs each
once; a job cancelled before its start never runs."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

from adapters.eventstore import History
from adapters.nats.server import NatsServerProcess
from domain.specs import parse_job_spec
from services.bootstrap.parts import build_brain
from services.brain.brain import BrainSettings
from services.executor import CommandExecutor
from tests.integration.pipeline import running_pipeline, types

TIMING = {"JobScheduled", "JobRetryScheduled", "JobQueued", "JobReceived", "JobFailed"}


def command(text: str, **extra: Any) -> Any:
    return parse_job_spec({"type": "command", "payload": {"command": text}, **extra})


def timing(history: History) -> list[tuple[str, Any]]:
    """The job's timing events with the attempt each names."""
    return [
        (e.envelope.type, getattr(e.envelope.data, "attempt", None))
        for e in history.events
        if e.envelope.type in TIMING
    ]


def occurred(history: History, kind: str) -> list[datetime]:
    return [e.envelope.occurred_at for e in history.events if e.envelope.type == kind]


async def test_a_failing_command_is_retried_with_backoff_then_fails_for_good(
    nats_server: NatsServerProcess,
) -> None:
    retry = {"maxAttempts": 3, "initialSeconds": 0.3, "multiplier": 2, "maxSeconds": 5}
    async with running_pipeline(nats_server) as pipe:
        await pipe.start_worker()
        job = await pipe.brain.dispatcher.dispatch(command("ls /no/such/dir", retry=retry))
        history = await pipe.wait_job(job.job_id, {"failed"}, timeout=30)
    assert timing(history) == [
        ("JobReceived", 1), ("JobRetryScheduled", 2), ("JobQueued", 2), ("JobReceived", 2),
        ("JobRetryScheduled", 3), ("JobQueued", 3), ("JobReceived", 3), ("JobFailed", 3),
    ], types(history)  # fmt: skip
    retries = [e.envelope.data for e in history.events if e.envelope.type == "JobRetryScheduled"]
    assert [r.delay_seconds for r in retries] == [0.3, 0.6]
    received = occurred(history, "JobReceived")
    for n, r in enumerate(retries):  # each retry ran no earlier than its backoff allowed
        assert r.retry_at is not None and received[n + 1] >= r.retry_at
    assert "TransitionRejected" not in types(history)


async def test_a_delayed_job_is_received_at_its_time(nats_server: NatsServerProcess) -> None:
    async with running_pipeline(nats_server) as pipe:
        await pipe.start_worker()
        job = await pipe.brain.dispatcher.dispatch(command("echo later", delaySeconds=1.0))
        assert job.status == "scheduled"
        history = await pipe.wait_job(job.job_id, {"completed"}, timeout=30)
    scheduled = next(e.envelope.data for e in history.events if e.envelope.type == "JobScheduled")
    lateness = (occurred(history, "JobReceived")[0] - scheduled.run_at).total_seconds()
    assert 0 <= lateness < 2.0, lateness  # generous: a shared machine's scheduling


async def test_a_brain_restarted_while_jobs_wait_runs_each_once(
    nats_server: NatsServerProcess,
) -> None:
    retry = {"maxAttempts": 2, "initialSeconds": 1.5}
    async with running_pipeline(nats_server) as pipe:
        await pipe.start_worker()
        delayed = await pipe.brain.dispatcher.dispatch(command("echo once", delaySeconds=1.5))
        failing = await pipe.brain.dispatcher.dispatch(command("ls /no/such/dir", retry=retry))
        await pipe.wait_job(failing.job_id, {"retrying"})
        pipe.stop.set()  # the Brain stops while one job is scheduled and one retrying
        await asyncio.gather(*pipe.tasks)
        assert (await pipe.store.load("job", delayed.job_id)).state.status == "scheduled"
        second = build_brain(pipe.nc, CommandExecutor(pipe.store), BrainSettings(check_every=0.2))
        stop = asyncio.Event()
        task = asyncio.create_task(second.run_work(stop))
        try:
            done = await pipe.wait_job(delayed.job_id, {"completed"}, timeout=30)
            failed = await pipe.wait_job(failing.job_id, {"failed"}, timeout=30)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
    assert timing(done) == [("JobScheduled", None), ("JobQueued", 1), ("JobReceived", 1)]
    assert [t for t, _ in timing(failed)] == [
        "JobReceived", "JobRetryScheduled", "JobQueued", "JobReceived", "JobFailed",
    ]  # fmt: skip


async def test_a_job_cancelled_before_its_start_never_runs(nats_server: NatsServerProcess) -> None:
    async with running_pipeline(nats_server) as pipe:
        await pipe.start_worker()
        cancelled = await pipe.brain.dispatcher.dispatch(command("echo never", delaySeconds=0.5))
        later = await pipe.brain.dispatcher.dispatch(command("echo after", delaySeconds=1.0))
        await pipe.brain.dispatcher.cancel(cancelled.job_id)
        await pipe.wait_job(later.job_id, {"completed"}, timeout=30)  # its time has passed too
        history = await pipe.store.load("job", cancelled.job_id)
    assert types(history) == [
        "JobDispatched", "JobScheduled", "JobCancelRequested", "JobCancelled",
    ]  # fmt: skip
