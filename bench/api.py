"""API bench: jobs dispatched through the HTTP API against jobs dispatched in-process, one run.

HTTP side: `baker up --workers 0` (the Brain with its API, projector and monitor, on a private
nats-server) and 2 `baker worker` processes in sessions of their own; an async httpx client in
this process. In-process side: the pipeline bench's Brain in this process with its own 2
`baker worker` processes on another private server. Same work on both: `echo hi` command jobs.
The two sides take turns round by round; medians over the rounds.

  sequential  one client, one POST at a time: POST latency p50/p99, and whether a GET of the
              job right after its POST sees it (read-your-writes), with that GET's latency
  concurrent  32 clients (each its own httpx transport and connection) POSTing N jobs in all:
              POST latency p50/p99, POSTs/s, and jobs/s from the first POST until the last
              `JobCompleted` is in the event log
  in-process  N jobs dispatched at once by the Brain in this process: jobs/s until the last
              completes (the pipeline bench's measure)
Targets (issue 14): POST p50 <= 3 ms for the sequential client; concurrent jobs/s >= 60 % of
in-process; every read after a POST sees its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from adapters.nats.client import Client, Options
from adapters.nats.message import Msg
from bench.common import (
    CpuMeter,
    machine,
    markdown_table,
    median,
    private_nats_server,
    progress,
    save,
)
from bench.pipeline import Ours, _burst, _cpu_columns, _stop_all, percentile

BIN = Path(sys.executable).parent
JOB = {"type": "command", "payload": {"command": "echo hi"}}
BODY = json.dumps(JOB).encode()
JSON = {"content-type": "application/json"}
CLIENTS = 32


class OverHttp:
    """`baker up --workers 0` + 2 `baker worker` on a private server, driven over HTTP."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self.out: dict[str, list[float]] = {}

    async def start(self) -> None:
        server = self._stack.enter_context(private_nats_server())
        data = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="baker-api-")))
        env = {**os.environ, "BAKER_NATS_URL": server.url, "BAKER_DATA_DIR": str(data),
               "BAKER_API_PORT": "0", "BAKER_LOG_LEVEL": "WARNING"}  # fmt: skip
        up = subprocess.Popen(  # noqa: S603, ASYNC220
            [str(BIN / "baker"), "up", "--workers", "0"], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        workers = [
            subprocess.Popen(  # noqa: S603, ASYNC220
                [str(BIN / "baker"), "worker"], env=env, stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            for _ in range(2)
        ]  # fmt: skip
        self._stack.callback(_stop_all, [*workers, up], 60)
        assert server.pid is not None
        self.meter = CpuMeter({
            "clients": [(os.getpid(), "self")],  # the httpx clients and the completion watch
            "baker_up": [(up.pid, "self")],
            "workers": [(w.pid, "self") for w in workers],
            "commands": [(w.pid, "children") for w in workers],
            "broker": [(server.pid, "self")],
        })  # fmt: skip
        self.url = await asyncio.to_thread(_dashboard_url, up)
        self.jobs_url = httpx.URL(f"{self.url}/api/jobs")
        # Each client its own connection: 32 programs calling the API. (One AsyncClient
        # shared by 32 tasks spends ~5x the CPU per request in its connection pool.) The
        # reads of the sequential client go through a whole AsyncClient.
        self.clients = [httpx.AsyncHTTPTransport() for _ in range(CLIENTS)]
        self.http = self.clients[0]
        self.reader = httpx.AsyncClient(base_url=self.url, timeout=60)
        # The completion watch is the bench's, not the system's: on our own client (as the
        # in-process side's Brain is), it looks for the event type in the raw headers.
        self.nc = await Client.connect(Options(url=server.url, name="bench-watch"))
        self.completed: set[str] = set()
        self.waiting: set[str] = set()
        self.all_done = asyncio.Event()
        self.nc.subscribe("baker.events.job.*", self._event)
        await self.nc.flush()
        await self._burst(20)  # warm up (waits for the workers)

    def _event(self, msg: Msg) -> None:
        if b"Baker-Event-Type: JobCompleted\r\n" in msg.raw_headers:
            job_id = msg.subject.rsplit(".", 1)[-1]
            self.completed.add(job_id)
            self.waiting.discard(job_id)
            if not self.waiting:
                self.all_done.set()

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        await self.reader.aclose()
        await self.nc.close()

    async def _post(self, http: httpx.AsyncHTTPTransport | None = None) -> tuple[str, float]:
        start = time.perf_counter()
        # Sent on httpx's transport (its public API for custom transports), without the
        # client's per-request URL, header and cookie merging, redirects and auth: these
        # clients share the 2 cores with the system they measure (their CPU per job is
        # reported beside the system's), where a client on another machine would not.
        request = httpx.Request("POST", self.jobs_url, content=BODY, headers=JSON)
        answer = await (http or self.http).handle_async_request(request)
        await answer.aread()
        took = time.perf_counter() - start
        if answer.status_code != 202:
            raise RuntimeError(f"POST /api/jobs answered {answer.status_code}: {answer.text}")
        return str(answer.json()["id"]), took

    async def sequential(self, jobs: int) -> None:
        posts, gets, missed = [], [], 0
        for _ in range(jobs):
            job_id, took = await self._post()
            posts.append(took)
            start = time.perf_counter()
            seen = await self.reader.get(f"/api/jobs/{job_id}")
            gets.append(time.perf_counter() - start)
            missed += seen.status_code != 200
        self._add("seq_post_p50_ms", percentile(posts, 0.5) * 1000)
        self._add("seq_post_p99_ms", percentile(posts, 0.99) * 1000)
        self._add("seq_get_p50_ms", percentile(gets, 0.5) * 1000)
        self._add("seq_jobs_per_s", jobs / sum(posts))
        self._add("seq_reads_missed", missed)

    async def _burst(self, jobs: int) -> tuple[list[float], float, float]:
        queue: asyncio.Queue[None] = asyncio.Queue()
        for _ in range(jobs):
            queue.put_nowait(None)
        ids: list[str] = []
        lat: list[float] = []

        async def client(http: httpx.AsyncHTTPTransport) -> None:
            while not queue.empty():
                queue.get_nowait()
                job_id, took = await self._post(http)
                ids.append(job_id)
                lat.append(took)

        start = time.perf_counter()
        await asyncio.gather(*(client(http) for http in self.clients[: min(CLIENTS, jobs)]))
        posted = time.perf_counter() - start
        self.waiting = set(ids) - self.completed
        self.all_done.clear()
        if self.waiting:
            await asyncio.wait_for(self.all_done.wait(), 300)
        return lat, jobs / posted, jobs / (time.perf_counter() - start)

    async def concurrent(self, jobs: int) -> None:
        self.meter.start()
        lat, posts_per_s, jobs_per_s = await self._burst(jobs)
        self.meter.stop()
        _cpu_columns(self.out, self.meter.per(jobs))
        self._add("conc_post_p50_ms", percentile(lat, 0.5) * 1000)
        self._add("conc_post_p99_ms", percentile(lat, 0.99) * 1000)
        self._add("conc_posts_per_s", posts_per_s)
        self._add("conc_jobs_per_s", jobs_per_s)

    def _add(self, key: str, value: float) -> None:
        self.out.setdefault(key, []).append(value)


def _dashboard_url(up: subprocess.Popen[str]) -> str:
    assert up.stdout is not None
    for line in up.stdout:
        found = re.search(r"dashboard (http://\S+?)/?$", line.strip())
        if found:
            return found.group(1)
    raise RuntimeError(f"baker up exited with {up.wait()} before serving its API")


async def run(rounds: int = 5, jobs: int = 1000, sequential: int = 300) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as astack:
        with contextlib.ExitStack() as stack:
            http, inproc = OverHttp(stack), Ours(astack)
            await http.start()
            try:
                await inproc.start()
                for r in range(rounds):
                    progress(f"round {r + 1}/{rounds}: over HTTP")
                    await http.sequential(sequential)
                    await http.concurrent(jobs)
                    progress(f"round {r + 1}/{rounds}: in-process")
                    inproc.meter.start()
                    burst = await _burst(inproc.brain, inproc.done, jobs)
                    inproc.meter.stop()
                    inproc.out["throughput"].append(burst)
                    _cpu_columns(inproc.out, inproc.meter.per(jobs))
            finally:  # before its server stops
                await http.close()
    med = {k: median(v) for k, v in http.out.items()}
    med["inproc_jobs_per_s"] = median(inproc.out["throughput"])
    inproc_cpu = {k: median(v) for k, v in inproc.out.items() if k.startswith("cpu_ms_")}
    doc: dict[str, Any] = {
        "bench": "api", "machine": machine(), "rounds": rounds, "jobs": jobs,
        "sequential": sequential, "clients": CLIENTS, "http": http.out,
        "inproc": inproc.out["throughput"], "median": med, "inproc_cpu": inproc_cpu,
        "ratio": med["conc_jobs_per_s"] / med["inproc_jobs_per_s"],
        "targets": {"seq_post_p50_ms": 3.0, "ratio": 0.6, "seq_reads_missed": 0},
    }  # fmt: skip
    save("api", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    m = doc["median"]
    rows = [
        ("one client, POST after POST", f"{m['seq_jobs_per_s']:,.0f} POSTs/s",
         f"{m['seq_post_p50_ms']:.1f} ms", f"{m['seq_post_p99_ms']:.1f} ms"),
        (f"{doc['clients']} clients, {doc['jobs']:,} jobs", f"{m['conc_jobs_per_s']:,.0f} jobs/s "
         f"({m['conc_posts_per_s']:,.0f} POSTs/s)", f"{m['conc_post_p50_ms']:.1f} ms",
         f"{m['conc_post_p99_ms']:.1f} ms"),
        ("in-process dispatch (same run)", f"{m['inproc_jobs_per_s']:,.0f} jobs/s", "", ""),
        ("HTTP / in-process", f"**{doc['ratio']:.0%}** (target >= 60 %)", "", ""),
    ]  # fmt: skip
    table = markdown_table(rows, ("dispatch", "rate", "POST p50", "POST p99"))
    return (
        f"{table}\n\n{_cpu_line(doc)}\n\n"
        "Read-your-writes: a GET of the job right after its POST answered 404 "
        f"{m['seq_reads_missed']:.0f} times in {doc['sequential']} (target 0); that GET's "
        f"p50 {m['seq_get_p50_ms']:.1f} ms. Medians of {doc['rounds']} rounds."
    )


def _cpu_line(doc: dict[str, Any]) -> str:
    """CPU per job of each part, medians over the rounds (the in-process side has no HTTP
    clients, API or projector: its Brain is the bench process)."""
    m, inproc = doc["median"], doc.get("inproc_cpu", {})
    parts = ("clients", "baker_up", "workers", "commands", "broker", "total")
    over = ", ".join(f"{p} {m[f'cpu_ms_{p}']:.2f}" for p in parts if f"cpu_ms_{p}" in m)
    inside = ", ".join(f"{p.removeprefix('cpu_ms_')} {v:.2f}" for p, v in inproc.items())
    return f"CPU ms per job over HTTP: {over}. In-process: {inside}."
