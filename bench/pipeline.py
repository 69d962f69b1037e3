"""Pipeline bench: end-to-end jobs/s and latency, Baker Street against Celery, in one run.

Both sides do the same work: a command job `echo hi` run in a subprocess by 2 worker
processes. Ours: a Brain in this process (dispatch + ingest, the full event trail of
JobDispatched → JobReceived → JobStarted → JobCompleted per job) and 2 `baker worker`
processes on a private nats-server. Celery: a Redis broker and result backend, `acks_late`,
a worker with 2 prefork processes. Throughput: N jobs submitted at once, until the last
completes. Latency: one job at a time, submit → completed, p50/p99. The two systems take
turns round by round, both set up for the whole run. Both systems' worker processes run in
sessions of their own, as separately started daemons do: with the kernel's autogroup
scheduling the processes of one session share one CPU share, and a worker left in this
process's session would compete with the client for it (both systems gain 3-4 % by it).
Ours runs as `baker up` does since DESIGN §12: the server admits one user per role (the Brain
connects as `brain`, the workers as `worker`), and a root worker's command children run
confined (`nobody`, no_new_privs, rlimits) through the sandbox spawner (`make sandbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import Topology, provision
from bench.common import (
    CpuMeter,
    child_pids,
    machine,
    median,
    private_nats_server,
    progress,
    role_url,
    save,
)
from domain.specs import parse_job_spec
from services.bootstrap.parts import build_brain
from services.brain.brain import Brain
from services.executor import CommandExecutor, Outcome
from services.tuning import tune_gc

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})
BIN = Path(sys.executable).parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Completions:
    """Futures resolved when the ingest records a job's terminal state."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[str]] = {}

    def __call__(self, job_id: str, outcome: Outcome) -> None:
        fut = self.waiting.get(job_id)
        if fut is not None and outcome.state.terminal and not fut.done():
            fut.set_result(outcome.state.status)

    def expect(self, job_id: str) -> asyncio.Future[str]:
        fut = asyncio.get_running_loop().create_future()
        self.waiting[job_id] = fut
        return fut


def _cpu_columns(out: dict[str, Any], per_job: dict[str, float]) -> None:
    for name, ms in per_job.items():
        out.setdefault(f"cpu_ms_{name}", []).append(ms)


def _latency_columns(out: dict[str, Any], lat: list[float]) -> None:
    out.setdefault("p50_ms", []).append(percentile(lat, 0.5) * 1000)
    out.setdefault("p99_ms", []).append(percentile(lat, 0.99) * 1000)


class Ours:
    """A private nats-server, a Brain in this process and 2 `baker worker` processes."""

    replicas = 1  # of every stream (BAKER_REPLICAS)

    def __init__(self, stack: contextlib.AsyncExitStack) -> None:
        self._stack = stack
        self.out: dict[str, Any] = {"throughput": []}

    async def broker(self) -> tuple[str, str, list[int]]:
        """Start the server: the Brain's URL, the workers' URL and the server's pids."""
        # as `baker up` runs: one NATS user per role (the Brain as `brain`, workers as `worker`)
        server = self._stack.enter_context(private_nats_server(roles=True))
        assert server.pid is not None
        return role_url(server, "brain"), role_url(server, "worker"), [server.pid]

    async def start(self) -> None:
        tune_gc()  # as `baker brain` does (the Celery client in this process gains it too)
        brain_url, worker_url, broker = await self.broker()
        nc = await Client.connect(Options(url=brain_url, name="bench-brain"))
        self._stack.push_async_callback(nc.close)
        self.nc = nc
        await provision(nc, Topology(replicas=self.replicas))
        store = JetStreamEventStore(nc)
        self._stack.push_async_callback(store.close)
        self.brain = build_brain(nc, CommandExecutor(store))
        self.done = Completions()
        self.brain.add_observer(self.done)
        stop = asyncio.Event()
        running = asyncio.create_task(self.brain.run(stop))

        async def stop_brain() -> None:
            stop.set()
            await running

        self._stack.push_async_callback(stop_brain)
        env = {
            **os.environ, "BAKER_NATS_URL": worker_url, "BAKER_LOG_LEVEL": "WARNING",
            "BAKER_REPLICAS": str(self.replicas),
        }  # fmt: skip
        workers = [
            subprocess.Popen(  # noqa: S603, ASYNC220
                [str(BIN / "baker"), "worker"], env=env, stdout=subprocess.DEVNULL,
                start_new_session=True,  # its own session: see the module docstring
            )
            for _ in range(2)
        ]  # fmt: skip
        self._stack.callback(_stop_all, workers, 30)
        self.meter = CpuMeter({
            "brain": [(os.getpid(), "self")],
            "workers": [(w.pid, "self") for w in workers],
            "commands": [(w.pid, "children") for w in workers],
            "broker": [(pid, "self") for pid in broker],
        })  # fmt: skip
        await _one(self.brain, self.done)  # warm up (waits for the workers)

    async def round(self, jobs: int, latency_jobs: int) -> None:
        self.meter.start()
        self.out["throughput"].append(await _burst(self.brain, self.done, jobs))
        self.meter.stop()
        _cpu_columns(self.out, self.meter.per(jobs))
        _latency_columns(self.out, [await _one(self.brain, self.done) for _ in range(latency_jobs)])


async def _one(brain: Brain, done: Completions) -> float:
    job_id = f"job-{os.urandom(8).hex()}"
    fut = done.expect(job_id)
    start = time.perf_counter()
    await brain.dispatcher.dispatch(SPEC, job_id=job_id)
    assert await asyncio.wait_for(fut, 30) == "completed"
    return time.perf_counter() - start


async def _burst(brain: Brain, done: Completions, jobs: int) -> float:
    ids = [f"job-{os.urandom(8).hex()}" for _ in range(jobs)]
    futures = [done.expect(i) for i in ids]
    start = time.perf_counter()
    await asyncio.gather(*(brain.dispatcher.dispatch(SPEC, job_id=i) for i in ids))
    results = await asyncio.wait_for(asyncio.gather(*futures), 300)
    elapsed = time.perf_counter() - start
    assert set(results) == {"completed"}, set(results)
    return jobs / elapsed


def _stop_all(procs: Sequence[subprocess.Popen[Any]], timeout: float) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout)


class Celery:
    """A Celery worker with 2 prefork processes on the local Redis (broker and results)."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self.out: dict[str, Any] = {"throughput": []}

    def start(self) -> str | None:
        """None when running, else why the peer is skipped."""
        try:
            import redis  # noqa: PLC0415

            from bench.celery_peer import REDIS_URL, app  # noqa: PLC0415

            info = redis.Redis.from_url(REDIS_URL).info("server")
        except Exception as exc:
            return f"skipped: Redis not reachable ({exc})"
        self.app = app
        worker = subprocess.Popen(  # noqa: S603
            [str(BIN / "celery"), "-A", "bench.celery_peer", "worker", "--concurrency=2",
             "--pool=prefork", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own session: see the module docstring
        )  # fmt: skip
        self._stack.callback(_stop_all, [worker], 60)
        app.send_task("bench.echo").get(timeout=60)  # warm up (waits for the worker)
        pool = child_pids(worker.pid)
        self.meter = CpuMeter({
            "client": [(os.getpid(), "self")],
            "workers": [(worker.pid, "self")] + [(p, "self") for p in pool],
            "commands": [(p, "children") for p in pool],
            "broker": [(int(info["process_id"]), "self")],
        })  # fmt: skip
        return None

    def round(self, jobs: int, latency_jobs: int) -> None:
        self.meter.start()
        start = time.perf_counter()
        results = [self.app.send_task("bench.echo") for _ in range(jobs)]
        for res in results:
            res.get(timeout=300)
        self.out["throughput"].append(jobs / (time.perf_counter() - start))
        self.meter.stop()
        _cpu_columns(self.out, self.meter.per(jobs))
        lat = []
        for _ in range(latency_jobs):
            t0 = time.perf_counter()
            self.app.send_task("bench.echo").get(timeout=30)
            lat.append(time.perf_counter() - t0)
        _latency_columns(self.out, lat)


async def run(rounds: int = 5, jobs: int = 1000, latency_jobs: int = 200) -> dict[str, Any]:
    """Rounds alternate between the two systems, so a machine that speeds up or slows down
    during the run weighs on both alike."""
    async with contextlib.AsyncExitStack() as astack:
        with contextlib.ExitStack() as stack:
            baker, peer = Ours(astack), Celery(stack)
            await baker.start()
            skipped = await asyncio.to_thread(peer.start)
            for r in range(rounds):
                progress(f"round {r + 1}/{rounds}: baker")
                await baker.round(jobs, latency_jobs)
                if skipped is None:
                    progress(f"round {r + 1}/{rounds}: celery")
                    await asyncio.to_thread(peer.round, jobs, latency_jobs)
    med = {k: median(v) for k, v in baker.out.items()}
    doc: dict[str, Any] = {
        "bench": "pipeline", "machine": machine(), "rounds": rounds, "jobs": jobs,
        "latency_jobs": latency_jobs, "interleaved": True, "baker": baker.out,
        "baker_median": med, "targets": {"ratio": 2.0, "p50_ms": 10.0},
    }  # fmt: skip
    if skipped is not None:
        doc["celery"] = skipped
    else:
        cmed = {k: median(v) for k, v in peer.out.items()}
        pairs = zip(baker.out["throughput"], peer.out["throughput"], strict=True)
        ratios = [b / c for b, c in pairs]
        doc.update(
            celery=peer.out, celery_median=cmed, ratio=med["throughput"] / cmed["throughput"],
            round_ratios=ratios,
        )  # fmt: skip
    save("pipeline", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    b = doc["baker_median"]
    rows = [f"| Baker Street (Brain + 2 `baker worker`) | {b['throughput']:,.0f} jobs/s | "
            f"{b['p50_ms']:.1f} ms | {b['p99_ms']:.1f} ms |"]  # fmt: skip
    if "celery_median" in doc:
        c = doc["celery_median"]
        rows.append(f"| Celery 5 (Redis, acks_late, 2 processes) | {c['throughput']:,.0f} jobs/s "
                    f"| {c['p50_ms']:.1f} ms | {c['p99_ms']:.1f} ms |")  # fmt: skip
        rows.append(f"| ratio ours/Celery | **{doc['ratio']:.2f}x** (target >= 2x) | | |")
        if doc.get("round_ratios"):
            low, high = min(doc["round_ratios"]), max(doc["round_ratios"])
            rows.append(f"| ratio, round by round | {low:.2f}x to {high:.2f}x | | |")
    else:
        rows.append(f"| Celery | {doc['celery']} | | |")
    head = "| system | throughput | p50 submit→completed | p99 |\n|---|---|---|---|"
    return (
        head + "\n" + "\n".join(rows) + f"\n\n{doc['jobs']:,} jobs per throughput round; "
        f"{doc['latency_jobs']} sequential jobs for latency; medians of {doc['rounds']} rounds"
        + (", the two systems taking turns." if doc.get("interleaved") else ".")
        + "\n\n"
        + cpu_report(doc)
    )


def cpu_report(doc: dict[str, Any]) -> str:
    """CPU per job in the throughput rounds, by part (medians), for both systems."""
    cols = ("front", "workers", "commands", "broker", "total")
    head = ("| CPU per job, ms | Brain / Celery client | workers | the `echo` child | "
            "nats-server / redis | total |\n|---|---|---|---|---|---|")  # fmt: skip
    lines = [head]
    for label, key, front in (("Baker Street", "baker_median", "brain"),
                              ("Celery", "celery_median", "client")):  # fmt: skip
        med = doc.get(key)
        if not isinstance(med, dict) or f"cpu_ms_{front}" not in med:
            continue
        values = [med[f"cpu_ms_{front if c == 'front' else c}"] for c in cols]
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines)
