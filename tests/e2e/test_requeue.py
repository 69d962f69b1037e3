"""A Brain killed between recording a job and queueing it: the next Brain queues it again and
a worker runs it, once.

The first Brain's dispatcher runs here, on its own connection, with a job queue whose publish
never returns, as if the process died the moment its `JobDispatched` was stored: the dispatch
is then cancelled and the connection dropped. (Killing a process at exactly that point from
outside is a race with a microsecond window; the state it leaves is this one.) The next Brain
and the worker are real `baker brain` and `baker worker` processes."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.job_queue import JetStreamJobQueue
from adapters.nats.server import NatsServerProcess
from domain.specs import parse_job_spec
from domain.wire import DispatchMessage
from services.brain.dispatcher import Dispatcher
from services.executor import CommandExecutor
from tests.e2e.procs import BakerProcess

ENV = {"BAKER_ALLOWED_COMMANDS": "echo", "BAKER_LOG_LEVEL": "WARNING", "BAKER_API_PORT": "0",
       "BAKER_HEARTBEAT_SECONDS": "1"}  # fmt: skip


class DiesBeforeQueueing(JetStreamJobQueue):
    """The real queue, but its Brain dies as it is about to publish a dispatch."""

    def __init__(self, nc: Client) -> None:
        super().__init__(nc)
        self.reached = asyncio.Event()

    async def dispatch(self, msg: DispatchMessage, headers: dict[str, str]) -> int:
        self.reached.set()
        await asyncio.Event().wait()  # never: the process is gone
        raise AssertionError("unreachable")


async def test_a_job_recorded_but_never_queued_runs_after_the_next_brain_starts(
    nats_server: NatsServerProcess, provisioned: Client, tmp_path: Path
) -> None:
    dying = await Client.connect(Options(url=nats_server.url, name="test-dying-brain"))
    queue = DiesBeforeQueueing(dying)
    dispatcher = Dispatcher(CommandExecutor(JetStreamEventStore(dying)), queue)
    spec = parse_job_spec({"type": "command", "payload": {"command": "echo requeued"}})
    job_id = "job-00000000requeue"
    dispatch = asyncio.create_task(dispatcher.dispatch(spec, job_id=job_id))
    await asyncio.wait_for(queue.reached.wait(), 30)
    dispatch.cancel()
    await dying.close()

    store = JetStreamEventStore(provisioned)
    assert [e.envelope.type for e in (await store.load("job", job_id)).events] == ["JobDispatched"]
    observer = JetStreamJobQueue(provisioned)
    assert await observer.queued_jobs() == set()  # recorded, never queued

    env: dict[str, Any] = {**ENV, "BAKER_NATS_URL": nats_server.url}
    brain = BakerProcess("brain", env={**env, "BAKER_DB": str(tmp_path / "readmodel.db")})
    worker = BakerProcess("worker", env=env)
    try:
        for _ in range(3000):
            history = await store.load("job", job_id)
            if history.state.terminal:
                break
            await asyncio.sleep(0.01)  # polling the job's history
        types = [e.envelope.type for e in history.events]
        assert types == ["JobDispatched", "JobReceived", "JobStarted", "JobCompleted"], types
        assert getattr(history.events[-1].envelope.data, "result", {})["stdout"] == "requeued\n"
        attempts = [getattr(e.envelope.data, "attempt", None) for e in history.events[1:3]]
        assert attempts == [1, 1]  # it ran once, as a first delivery
    finally:
        assert await asyncio.to_thread(worker.stop, signal.SIGTERM) == 0
        assert await asyncio.to_thread(brain.stop, signal.SIGTERM) == 0
        await observer.close()
