"""Cluster bench (DESIGN §13): the pipeline on a 3-node JetStream cluster with R3 streams
against R1 on a single server, in one run, and the failover time.

Throughput and latency are `bench pipeline`'s (its `Ours`: a Brain in this process, 2
`baker worker` processes, `echo hi` command jobs), on two set-ups that take turns round by
round: one nats-server with R1 streams, and a local 3-node cluster (`baker cluster up`'s)
with R3 streams, the Brain dialling node n1 first and the workers n2. Neither server has role
users (the local cluster runs without them), so the two differ only in replication. Target:
R3 at least half of R1's throughput.

Failover: with jobs running (a steady load of jobs in flight), the `BAKER_EVENTS` leader
(STREAM.INFO's `cluster.leader`) is SIGKILLed and a job is dispatched at once; the time from
the kill until that job has completed (its terminal event stored and ingested) is one
failover, and the time until STREAM.INFO names a new leader is shown beside it (the server's
part). The node is started again on its store and every stream and consumer is back on 3
current peers before the next kill; p50 over the kills.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.errors import NatsError
from adapters.nats.streams import EVENTS_STREAM, JOBS_STREAM, LANE_CONSUMERS
from bench.common import (
    machine,
    markdown_table,
    median,
    private_cluster,
    private_nats_server,
    progress,
    save,
)
from bench.pipeline import SPEC, Completions, Ours, percentile
from services.brain.brain import Brain

STREAMS = ("BAKER_JOBS", "BAKER_EVENTS", "BAKER_TASKS", "BAKER_ADVISORIES",
           "KV_baker-cancels", "KV_baker-leader", "KV_baker-idempotency")  # fmt: skip
CONSUMERS = tuple((JOBS_STREAM, c) for c in (*LANE_CONSUMERS.values(), "brain-ingest"))


class Single(Ours):
    """R1 streams on one nats-server."""

    async def broker(self) -> tuple[str, str, list[int]]:
        server = self._stack.enter_context(private_nats_server())
        assert server.pid is not None
        return server.url, server.url, [server.pid]


class Replicated(Ours):
    """R3 streams on a local 3-node cluster."""

    replicas = 3
    failed_during_failover = 0

    async def broker(self) -> tuple[str, str, list[int]]:
        self.cluster = await self._stack.enter_async_context(private_cluster(3))
        pids = [pid for pid in self.cluster.pids().values() if pid is not None]
        return self.cluster.url_from("n1"), self.cluster.url_from("n2"), pids

    async def failover(self, kills: int, in_flight: int) -> list[tuple[float, float]]:
        """For each kill of the `BAKER_EVENTS` leader, seconds from the kill until a job
        dispatched at the kill has completed, and until STREAM.INFO names a new leader."""
        load = Load(self.brain, self.done, in_flight)
        out: list[tuple[float, float]] = []
        try:
            for k in range(kills):
                await _until(lambda: healthy(self.nc), "every stream and consumer on 3 peers")
                steady = load.count + in_flight  # some jobs completed on the healthy cluster
                await _until(lambda n=steady: load.count >= n, "jobs completing")
                leader = await _leader(self.nc)
                start = time.perf_counter()
                self.cluster.kill(leader)
                # Not a job already in flight: its terminal event may have been stored just
                # before the kill and be ingested just after, which measures nothing.
                elected = asyncio.create_task(_elected(self.nc, leader, start))
                job = await _one(self.brain, self.done, start)
                out.append((job, await elected))
                progress(f"kill {k + 1}/{kills}: {leader}; a job after {job:.2f}s, "
                         f"a new leader after {out[-1][1]:.2f}s")  # fmt: skip
                self.cluster.restart(leader)  # from this (main) thread: see LocalCluster.start
        finally:
            await load.stop()
        self.failed_during_failover = load.failures
        return out


class Load:
    """`in_flight` loops, each dispatching a job and waiting for it to complete, again and
    again; `done` holds each completion's time."""

    def __init__(self, brain: Brain, completions: Completions, in_flight: int) -> None:
        self.brain = brain
        self.completions = completions
        self.done: list[float] = []
        self.failures = 0
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(in_flight)]

    @property
    def count(self) -> int:
        return len(self.done)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            job_id = f"job-{os.urandom(8).hex()}"
            fut = self.completions.expect(job_id)
            try:
                await self.brain.dispatcher.dispatch(SPEC, job_id=job_id)
                await asyncio.wait_for(fut, 120)
            except Exception:  # a dispatch that outlived its retries: counted, load goes on
                self.failures += 1
                continue
            self.done.append(time.perf_counter())

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _one(brain: Brain, completions: Completions, start: float) -> float:
    """Dispatch a job now; seconds from `start` until it has completed."""
    job_id = f"job-{os.urandom(8).hex()}"
    fut = completions.expect(job_id)
    await brain.dispatcher.dispatch(SPEC, job_id=job_id)
    assert await asyncio.wait_for(fut, 120) == "completed"
    return time.perf_counter() - start


async def _elected(nc: Client, old: str, start: float) -> float:
    """Seconds from `start` until STREAM.INFO of `BAKER_EVENTS` names a leader other than
    `old` (it needs the meta leader too, which may have been on the same node)."""
    while True:
        with contextlib.suppress(NatsError, KeyError):
            # A short timeout: a request sent while nobody can answer is dropped unanswered.
            info = await jsapi.api(nc, f"STREAM.INFO.{EVENTS_STREAM}", timeout=0.25)
            if info["cluster"]["leader"] not in (None, old):
                return time.perf_counter() - start
        await asyncio.sleep(0.005)  # polling the server; the time is taken when it answers


async def healthy(nc: Client) -> bool:
    """Every stream and the job consumers have a leader and all replicas current."""
    try:
        infos = [await jsapi.stream_info(nc, s) for s in STREAMS]
        infos += [await jsapi.consumer_info(nc, s, c) for s, c in CONSUMERS]
    except NatsError:
        return False
    return all(_current(info.get("cluster") or {}) for info in infos)


def _current(cluster: dict[str, Any]) -> bool:
    peers = cluster.get("replicas") or []
    return bool(cluster.get("leader")) and len(peers) == 2 and all(p.get("current") for p in peers)


async def _leader(nc: Client) -> str:
    info = await jsapi.stream_info(nc, EVENTS_STREAM)
    return str(info["cluster"]["leader"])


async def _until(check: Any, what: str, timeout: float = 120.0) -> None:
    """Poll `check` (a sync or async predicate) until true; `TimeoutError` naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"cluster bench: not reached in {timeout:g}s: {what}")
        await asyncio.sleep(0.005)  # polling; the times measured are taken where they happen


async def run(
    rounds: int = 5, jobs: int = 1000, latency_jobs: int = 100, kills: int = 5, in_flight: int = 8
) -> dict[str, Any]:
    """Throughput rounds alternate between R1 and R3, so a machine that speeds up or slows
    down weighs on both alike; then the kills, on the R3 cluster alone."""
    async with contextlib.AsyncExitStack() as stack:
        single, replicated = Single(stack), Replicated(stack)
        await single.start()
        await replicated.start()
        for r in range(rounds):
            progress(f"round {r + 1}/{rounds}: R1, one server")
            await single.round(jobs, latency_jobs)
            progress(f"round {r + 1}/{rounds}: R3, 3-node cluster")
            await replicated.round(jobs, latency_jobs)
        failovers = await replicated.failover(kills, in_flight) if kills else []
    r1 = {k: median(v) for k, v in single.out.items()}
    r3 = {k: median(v) for k, v in replicated.out.items()}
    pairs = zip(replicated.out["throughput"], single.out["throughput"], strict=True)
    doc: dict[str, Any] = {
        "bench": "cluster", "machine": machine(), "rounds": rounds, "jobs": jobs,
        "latency_jobs": latency_jobs, "r1": single.out, "r3": replicated.out,
        "r1_median": r1, "r3_median": r3, "ratio": r3["throughput"] / r1["throughput"],
        "round_ratios": [a / b for a, b in pairs], "kills": kills, "in_flight": in_flight,
        "failover_s": failovers, "failed_jobs_during_failover": replicated.failed_during_failover,
        "targets": {"ratio": 0.5},
    }  # fmt: skip
    if failovers:
        doc["failover_p50_s"] = percentile([job for job, _ in failovers], 0.5)
        doc["election_p50_s"] = percentile([elected for _, elected in failovers], 0.5)
    save("cluster", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    rows = []
    for label, key in (("R1, one nats-server", "r1_median"), ("R3, 3-node cluster", "r3_median")):
        m = doc[key]
        rows.append((label, f"{m['throughput']:,.0f} jobs/s", f"{m['p50_ms']:.1f} ms",
                     f"{m['p99_ms']:.1f} ms", f"{m['cpu_ms_broker']:.2f}",
                     f"{m['cpu_ms_total']:.2f}"))  # fmt: skip
    low, high = min(doc["round_ratios"]), max(doc["round_ratios"])
    rows.append(("ratio R3/R1", f"**{doc['ratio']:.2f}** (target >= 0.5)",
                 f"rounds {low:.2f} to {high:.2f}", "", "", ""))  # fmt: skip
    head = ("set-up", "throughput", "p50 submit→completed", "p99", "server CPU ms/job",
            "total CPU ms/job")  # fmt: skip
    text = markdown_table(rows, head) + (
        f"\n\n{doc['jobs']:,} jobs per throughput round, {doc['latency_jobs']} sequential jobs "
        f"for latency; medians of {doc['rounds']} rounds, R1 and R3 taking turns."
    )
    if doc.get("failover_s"):
        jobs = [job for job, _ in doc["failover_s"]]
        text += (
            f"\n\nFailover, SIGKILL of the BAKER_EVENTS leader → the next job completed "
            f"(dispatched at the kill, {doc['in_flight']} more jobs in flight): p50 "
            f"**{doc['failover_p50_s']:.2f} s** over {len(jobs)} kills (min {min(jobs):.2f} s, "
            f"max {max(jobs):.2f} s); STREAM.INFO names a new leader after p50 "
            f"{doc['election_p50_s']:.2f} s. Jobs that failed during the kills: "
            f"{doc['failed_jobs_during_failover']}."
        )
    return text
