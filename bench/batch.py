"""Batch bench: jobs dispatched through `POST /api/jobs/batch` against jobs dispatched
in-process, one run (DESIGN §11, issue 16 item 8).

HTTP side: the API bench's `baker up --workers 0` with 2 `baker worker` processes on a private
nats-server, and one httpx client in this process sending the jobs in batches of `BATCH`.
In-process side: the pipeline bench's Brain in this process with its own 2 `baker worker`
processes on another private server, dispatching every job at once. Same work on both: `echo
hi` command jobs. The two sides take turns round by round; medians over the rounds.

  batch       N jobs as N / BATCH batch POSTs (`CLIENTS` at a time): dispatched jobs/s (until
              the last POST is answered) and jobs/s until the last `JobCompleted` is in the log
  in-process  N jobs dispatched at once by the Brain in this process: jobs/s until the last
              completes (the pipeline bench's measure)
Target (issue 16): batch jobs/s >= 80 % of in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench.api import JOB, OverHttp
from bench.common import machine, markdown_table, median, progress, save
from bench.pipeline import Ours, _burst

BATCH = 500
CLIENTS = 2  # batch POSTs in flight at once


async def _batches(http: OverHttp, jobs: int) -> tuple[float, float]:
    """(jobs/s dispatched, jobs/s completed) of `jobs` jobs sent as batches."""
    sizes = [min(BATCH, jobs - start) for start in range(0, jobs, BATCH)]
    pending = list(sizes)
    ids: list[str] = []

    async def client() -> None:
        while pending:
            size = pending.pop()
            answer = await http.reader.post("/api/jobs/batch", json={"jobs": [JOB] * size})
            if answer.status_code != 202:
                raise RuntimeError(f"POST /api/jobs/batch answered {answer.status_code}: "
                                   f"{answer.text[:200]}")  # fmt: skip
            ids.extend(answer.json()["ids"])

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(min(CLIENTS, len(sizes)))))
    posted = time.perf_counter() - start
    http.waiting = set(ids) - http.completed
    http.all_done.clear()
    if http.waiting:
        await asyncio.wait_for(http.all_done.wait(), 300)
    return jobs / posted, jobs / (time.perf_counter() - start)


async def run(rounds: int = 5, jobs: int = 2000) -> dict[str, Any]:
    out: dict[str, list[float]] = {"dispatched": [], "completed": [], "inproc": []}
    async with contextlib.AsyncExitStack() as astack:
        with contextlib.ExitStack() as stack:
            http, inproc = OverHttp(stack), Ours(astack)
            await http.start()
            try:
                await inproc.start()
                for r in range(rounds):
                    progress(f"round {r + 1}/{rounds}: batches over HTTP")
                    dispatched, completed = await _batches(http, jobs)
                    out["dispatched"].append(dispatched)
                    out["completed"].append(completed)
                    progress(f"round {r + 1}/{rounds}: in-process")
                    out["inproc"].append(await _burst(inproc.brain, inproc.done, jobs))
            finally:  # before its server stops
                await http.close()
    med = {k: median(v) for k, v in out.items()}
    doc: dict[str, Any] = {
        "bench": "batch", "machine": machine(), "rounds": rounds, "jobs": jobs, "batch": BATCH,
        "clients": CLIENTS, "runs": out, "median": med,
        "ratio": med["completed"] / med["inproc"], "targets": {"ratio": 0.8},
    }  # fmt: skip
    save("batch", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    m = doc["median"]
    rows = [
        (f"batch POSTs of {doc['batch']} ({doc['clients']} at a time), {doc['jobs']:,} jobs",
         f"{m['completed']:,.0f} jobs/s", f"{m['dispatched']:,.0f} jobs/s"),
        ("in-process dispatch (same run)", f"{m['inproc']:,.0f} jobs/s", ""),
        ("batch / in-process", f"**{doc['ratio']:.0%}** (target >= 80 %)", ""),
    ]  # fmt: skip
    table = markdown_table(rows, ("dispatch", "until all completed", "until all dispatched"))
    return f"{table}\n\nMedians of {doc['rounds']} rounds."
