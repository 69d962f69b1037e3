"""Pipeline bench: end-to-end jobs/s and latency, Baker Street against Celery, in one run.

Both sides do the same work: a command job `echo hi` run in a subprocess by 2 worker
processes. Ours: a Brain in this process (dispatch + ingest, the full event trail of
JobDispatched → JobReceived → JobStarted → JobCompleted per job) and 2 `baker worker`
processes on a private nats-server. Celery: a Redis broker and result backend, `acks_late`,
a worker with 2 prefork processes. Throughput: N jobs submitted at once, until the last
completes. Latency: one job at a time, submit → completed, p50/p99.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from adapters.eventstore import Outcome
from adapters.nats.connection import NatsSettings, connect
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import provision
from bench.common import (
    CpuMeter,
    child_pids,
    machine,
    median,
    private_nats_server,
    progress,
    save,
)
from domain.specs import parse_job_spec
from services.brain.brain import Brain

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


async def ours(jobs: int, latency_jobs: int, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"throughput": [], "p50_ms": [], "p99_ms": []}
    with private_nats_server() as server:
        nc = await connect(NatsSettings(url=server.url, name="bench-brain"))
        await provision(nc.jsm())
        store = JetStreamEventStore(nc)
        brain = Brain(nc, store)
        done = Completions()
        brain.add_observer(done)
        stop = asyncio.Event()
        running = asyncio.create_task(brain.run(stop))
        env = {**os.environ, "BAKER_NATS_URL": server.url, "BAKER_LOG_LEVEL": "WARNING"}
        workers = [
            subprocess.Popen([str(BIN / "baker"), "worker"], env=env, stdout=subprocess.DEVNULL)  # noqa: S603, ASYNC220
            for _ in range(2)
        ]
        assert server.pid is not None
        meter = CpuMeter({
            "brain": [(os.getpid(), "self")],
            "workers": [(w.pid, "self") for w in workers],
            "commands": [(w.pid, "children") for w in workers],
            "broker": [(server.pid, "self")],
        })  # fmt: skip
        try:
            await _one(brain, done)  # warm up
            for r in range(rounds):
                progress(f"baker round {r + 1}/{rounds}")
                meter.start()
                out["throughput"].append(await _burst(brain, done, jobs))
                meter.stop()
                _cpu_columns(out, meter.per(jobs))
                lat = [await _one(brain, done) for _ in range(latency_jobs)]
                out["p50_ms"].append(percentile(lat, 0.5) * 1000)
                out["p99_ms"].append(percentile(lat, 0.99) * 1000)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(30)
            stop.set()
            await running
            await store.close()
            await nc.close()
    return out


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


def celery(jobs: int, latency_jobs: int, rounds: int) -> dict[str, Any] | str:
    try:
        import redis  # noqa: PLC0415

        from bench.celery_peer import REDIS_URL, app  # noqa: PLC0415

        info = redis.Redis.from_url(REDIS_URL).info("server")
    except Exception as exc:
        return f"skipped: Redis not reachable ({exc})"
    redis_pid = int(info["process_id"])
    worker = subprocess.Popen(  # noqa: S603
        [str(BIN / "celery"), "-A", "bench.celery_peer", "worker", "--concurrency=2",
         "--pool=prefork", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    out: dict[str, Any] = {"throughput": [], "p50_ms": [], "p99_ms": []}
    try:
        app.send_task("bench.echo").get(timeout=60)  # warm up (waits for the worker)
        pool = child_pids(worker.pid)
        meter = CpuMeter({
            "client": [(os.getpid(), "self")],
            "workers": [(worker.pid, "self")] + [(p, "self") for p in pool],
            "commands": [(p, "children") for p in pool],
            "broker": [(redis_pid, "self")],
        })  # fmt: skip
        for r in range(rounds):
            progress(f"celery round {r + 1}/{rounds}")
            meter.start()
            start = time.perf_counter()
            results = [app.send_task("bench.echo") for _ in range(jobs)]
            for res in results:
                res.get(timeout=300)
            out["throughput"].append(jobs / (time.perf_counter() - start))
            meter.stop()
            _cpu_columns(out, meter.per(jobs))
            lat = []
            for _ in range(latency_jobs):
                t0 = time.perf_counter()
                app.send_task("bench.echo").get(timeout=30)
                lat.append(time.perf_counter() - t0)
            out["p50_ms"].append(percentile(lat, 0.5) * 1000)
            out["p99_ms"].append(percentile(lat, 0.99) * 1000)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    return out


async def run(rounds: int = 5, jobs: int = 1000, latency_jobs: int = 200) -> dict[str, Any]:
    baker = await ours(jobs, latency_jobs, rounds)
    peer = await asyncio.to_thread(celery, jobs, latency_jobs, rounds)
    med = {k: median(v) for k, v in baker.items()}
    doc: dict[str, Any] = {
        "bench": "pipeline", "machine": machine(), "rounds": rounds, "jobs": jobs,
        "latency_jobs": latency_jobs, "baker": baker, "baker_median": med,
        "targets": {"ratio": 2.0, "p50_ms": 10.0},
    }  # fmt: skip
    if isinstance(peer, str):
        doc["celery"] = peer
    else:
        cmed = {k: median(v) for k, v in peer.items()}
        doc.update(celery=peer, celery_median=cmed, ratio=med["throughput"] / cmed["throughput"])
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
    else:
        rows.append(f"| Celery | {doc['celery']} | | |")
    head = "| system | throughput | p50 submit→completed | p99 |\n|---|---|---|---|"
    return (
        head + "\n" + "\n".join(rows) + f"\n\n{doc['jobs']:,} jobs per throughput round; "
        f"{doc['latency_jobs']} sequential jobs for latency; medians of {doc['rounds']} rounds."
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
