"""Agent bench (issue 15): what durable steps cost, and how fast a killed job resumes.

Recording: an agent job of 10 tool steps (10 model calls asking for a `command` tool, then
the answer: 31 recorded steps) against the fake Messages API, which answers at once, run by
the agent loop in this process on a private nats-server with the Brain's ingest running
beside it. Each round runs the same jobs with recording off (no journal) and on (every step
published to `BAKER_JOBS` and awaited before the next begins, as a worker does), taking turns.
Reported: the time one recorded step waits for its publish (p50, p99), and the job's time per
step on and off, whose difference is what recording adds.

Resume: a `baker worker` process is SIGKILLed while the job's second model call is in
flight (its first call and tool recorded); another `baker worker` takes the redelivery after
the ack wait. Reported: from the new delivery (its `received` report, seen on the wire) to the
resumed model call at the fake API, and from the kill to it (the ack wait included); p50 over
the kills.

Targets: recording adds <= 5 ms per step (p50); resume <= 1 s after the new delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from adapters.clock import SYSTEM_CLOCK
from adapters.executors.agent import run_agent
from adapters.executors.base import NO_JOURNAL, StepJournal
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.job_queue import JetStreamJobQueue
from adapters.nats.streams import Topology, provision
from bench.common import machine, markdown_table, median, private_nats_server, progress, save
from bench.pipeline import Completions, percentile
from domain.specs import AgentPayload, parse_job_spec
from domain.wire_steps import StepKind
from services.bootstrap.parts import build_brain
from services.executor import CommandExecutor
from services.worker.journal import WorkerJournal
from services.worker.reporter import Reporter
from tests.fakes.anthropic_server import FakeAnthropic, Reply, text_message, tool_use

TOOL_STEPS = 10
JOBS_PER_ROUND = 5
KILLS = 5
ACK_WAIT = 2
BIN = Path(sys.executable).parent
PROMPT = "Check the disk ten times."


def _script(request: dict[str, Any]) -> Reply:
    turn = len(request["messages"]) // 2  # user, (assistant, user)*: one turn per tool step
    if turn < TOOL_STEPS:
        return tool_use("command", {"command": "echo hi"})
    return text_message("All good.")


class TimedJournal:
    """A worker's journal that keeps how long each `record` waited."""

    def __init__(self, inner: StepJournal, waits: list[float]) -> None:
        self._inner = inner
        self._waits = waits

    async def recorded(self) -> Any:
        return await self._inner.recorded()

    async def record(self, kind: StepKind, step: int, **fields: Any) -> None:
        start = time.perf_counter()
        await self._inner.record(kind, step, **fields)
        self._waits.append(time.perf_counter() - start)


async def _recording(rounds: int) -> dict[str, Any]:
    out: dict[str, list[float]] = {"on_ms_per_step": [], "off_ms_per_step": []}
    waits: list[float] = []
    spec = parse_job_spec({"type": "agent", "payload": {"prompt": PROMPT}})
    payload = AgentPayload.model_validate({"prompt": PROMPT})
    async with contextlib.AsyncExitStack() as stack:
        server = stack.enter_context(private_nats_server())
        api = stack.enter_context(FakeAnthropic(_script))
        nc = await Client.connect(Options(url=server.url, name="bench-agent"))
        stack.push_async_callback(nc.close)
        await provision(nc)
        store = JetStreamEventStore(nc)
        brain = build_brain(nc, CommandExecutor(store))
        done = Completions()
        brain.add_observer(done)
        stop = asyncio.Event()
        running = asyncio.create_task(brain.run(stop))
        queue = JetStreamJobQueue(nc)

        async def job(record: bool) -> float:
            dispatched = await brain.dispatcher.dispatch(spec)
            reporter = Reporter(queue, dispatched.job_id, "worker-bench", 1, {}, None)
            started = asyncio.Event()
            journal: StepJournal = NO_JOURNAL
            if record:
                journal = TimedJournal(WorkerJournal(reporter, None, started, SYSTEM_CLOCK), waits)
            await reporter.started()
            started.set()
            fut = done.expect(dispatched.job_id)
            begin = time.perf_counter()
            execution = await run_agent(
                payload, api_key="bench", base_url=api.base_url, allowed_commands=("echo",),
                journal=journal, max_iterations=TOOL_STEPS + 1,
            )  # fmt: skip
            took = time.perf_counter() - begin
            assert execution.ok, execution.error
            await reporter.finish("completed", result=execution.result)
            await asyncio.wait_for(fut, 30)
            return took / (TOOL_STEPS * 3 + 1)

        await job(True)  # warm up
        for i in range(rounds):
            progress(f"recording round {i + 1}/{rounds}")
            for record in (False, True):
                per_step = [await job(record) for _ in range(JOBS_PER_ROUND)]
                key = "on_ms_per_step" if record else "off_ms_per_step"
                out[key].append(median(per_step) * 1000)
        stop.set()
        await running
    return {
        "record_wait_p50_ms": percentile(waits, 0.5) * 1000,
        "record_wait_p99_ms": percentile(waits, 0.99) * 1000,
        "on_ms_per_step": median(out["on_ms_per_step"]),
        "off_ms_per_step": median(out["off_ms_per_step"]),
        "added_ms_per_step": median(out["on_ms_per_step"]) - median(out["off_ms_per_step"]),
        "steps_timed": len(waits),
    }


class HeldModel(FakeAnthropic):
    """Answers the first turn with a tool use; holds the first request of the second turn
    (the worker is killed meanwhile) and answers later ones at once, noting when they came."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        self.resumed_at: float | None = None
        self._second = 0
        super().__init__(self._reply)

    def _reply(self, request: dict[str, Any]) -> Reply:
        if len(request["messages"]) == 1:
            return tool_use("command", {"command": "echo hi"})
        self._second += 1
        if self._second == 1:
            self.held.set()
            self.release.wait(30)
        elif self.resumed_at is None:
            self.resumed_at = time.monotonic()
        return text_message("done")


def _worker(url: str, api: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BAKER_NATS_URL": url, "BAKER_ACK_WAIT_SECONDS": str(ACK_WAIT),
           "ANTHROPIC_API_KEY": "bench", "ANTHROPIC_BASE_URL": api, "BAKER_LOG_LEVEL": "WARNING",
           "BAKER_ALLOWED_COMMANDS": "echo"}  # fmt: skip
    return subprocess.Popen(  # noqa: S603
        [str(BIN / "baker"), "worker"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


async def _resume_once(
    server_url: str, brain: Any, nc: Client, done: Completions
) -> tuple[float, float]:
    spec = parse_job_spec({"type": "agent", "payload": {"prompt": "once"}})
    with HeldModel() as api:
        first = _worker(server_url, api.base_url)
        try:
            dispatched = await brain.dispatcher.dispatch(spec)
            fut = done.expect(dispatched.job_id)
            delivered: list[float] = []

            def on_status(msg: Any) -> None:
                doc = json.loads(msg.data)
                if doc.get("status") == "received" and doc.get("attempt", 1) > 1:
                    delivered.append(time.monotonic())

            sub = nc.subscribe(f"baker.jobs.status.{dispatched.job_id}", on_status)
            await asyncio.to_thread(api.held.wait, 60)
            first.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            first.wait(10)
            api.release.set()
            second = _worker(server_url, api.base_url)
            try:
                await asyncio.wait_for(fut, 60)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(30)
            sub.unsubscribe()
        finally:
            if first.poll() is None:
                first.kill()
    assert api.resumed_at is not None and delivered
    return api.resumed_at - delivered[0], api.resumed_at - killed


async def _resume(kills: int) -> dict[str, Any]:
    from_delivery: list[float] = []
    from_kill: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        server = stack.enter_context(private_nats_server())
        nc = await Client.connect(Options(url=server.url, name="bench-resume"))
        stack.push_async_callback(nc.close)
        await provision(nc, Topology(ack_wait=ACK_WAIT))
        brain = build_brain(nc, CommandExecutor(JetStreamEventStore(nc)))
        done = Completions()
        brain.add_observer(done)
        stop = asyncio.Event()
        running = asyncio.create_task(brain.run(stop))
        for i in range(kills):
            progress(f"resume {i + 1}/{kills}")
            delivery, kill = await _resume_once(server.url, brain, nc, done)
            from_delivery.append(delivery)
            from_kill.append(kill)
        stop.set()
        await running
    return {
        "resume_from_delivery_p50_ms": median(from_delivery) * 1000,
        "resume_from_delivery_max_ms": max(from_delivery) * 1000,
        "resume_from_kill_p50_ms": median(from_kill) * 1000,
        "ack_wait_s": ACK_WAIT,
        "kills": kills,
    }


async def run(rounds: int = 3) -> dict[str, Any]:
    doc = {"machine": machine(), **await _recording(rounds), **await _resume(KILLS)}
    save("agent", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    rows = [
        ("recording: wait per recorded step, p50 / p99", f"{doc['record_wait_p50_ms']:.2f} / "
         f"{doc['record_wait_p99_ms']:.2f} ms", "<= 5 ms p50"),
        ("job time per step, recording off / on", f"{doc['off_ms_per_step']:.2f} / "
         f"{doc['on_ms_per_step']:.2f} ms", ""),
        ("added by recording, per step", f"{doc['added_ms_per_step']:.2f} ms", "<= 5 ms"),
        ("resume: new delivery -> next model call, p50 (max)",
         f"{doc['resume_from_delivery_p50_ms']:.0f} ms ({doc['resume_from_delivery_max_ms']:.0f})",
         "<= 1 s"),
        (f"resume: SIGKILL -> next model call, p50 (ack wait {doc['ack_wait_s']} s)",
         f"{doc['resume_from_kill_p50_ms']:.0f} ms", f"<= 1 s + {doc['ack_wait_s']} s"),
    ]  # fmt: skip
    return markdown_table(rows, ("measure", "value", "target"))
