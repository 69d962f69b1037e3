"""Event store bench: raw nats-py against our append, in one run on one nats-server.

The raw baselines run on plain nats-py (`nats.connect`, its public API, no patches); our
store runs on our own client (`adapters/nats/client.py`), each on its own connection.

Measures, over several rounds (medians reported):
  raw_publish_async  pipelined `publish_async` to one subject, msgs/s
  raw_expected_seq   per-subject expected-sequence publishes over 1,000 subjects, msgs/s
  append             our `append` over 1,000 aggregates (same concurrency), events/s
  execute            our `execute` (decide + append, cached state), commands/s
  validations        lifecycle `decide` calls per second on one core
What the hash chain costs is `python -m bench chain` (many short on/off pairs).
"""

from __future__ import annotations

import asyncio
import time
import timeit
import uuid
from datetime import UTC, datetime
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js.api import StorageType, StreamConfig

from adapters.eventstore import NEW
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import provision
from bench.common import machine, median, private_nats_server, progress, save
from domain.commands import DispatchJob, FailJob, RecordStatus, RequestCancel
from domain.events import Envelope, JobProgressed, encode_event, seal
from domain.lifecycle import decide
from domain.lifecycle.job import JobState
from domain.specs import parse_job_spec
from services.executor import CommandExecutor

PAYLOAD = b'{"eventId":"00000000-0000-0000-0000-000000000000","type":"JobProgressed","aggregate":"job","aggregateId":"job-bench-000000","version":1,"occurredAt":"2026-11-22T10:00:00.000000Z","schema":1,"data":{"workerId":"worker-0a1b2c3d","attempt":1,"progress":"step"}}'  # noqa: E501


async def raw_publish_async(nc: NATS, n: int) -> float:
    js = nc.jetstream(publish_async_max_pending=4000)
    start = time.perf_counter()
    futures = [await js.publish_async("bench.raw.pub", PAYLOAD) for _ in range(n)]
    await asyncio.gather(*futures)
    return n / (time.perf_counter() - start)


async def raw_expected_seq(nc: NATS, subjects: int, per_subject: int, tag: str) -> float:
    js = nc.jetstream()

    async def one(i: int) -> None:
        last = 0
        for _ in range(per_subject):
            ack = await js.publish(
                f"bench.seq.{tag}.{i}",
                PAYLOAD,
                headers={"Nats-Expected-Last-Subject-Sequence": str(last)},
            )
            last = ack.seq

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(subjects)))
    return subjects * per_subject / (time.perf_counter() - start)


async def our_append(store: JetStreamEventStore, aggs: int, per_agg: int, tag: str) -> float:
    executor = CommandExecutor(store)

    async def one(i: int) -> None:
        pos = NEW
        for k in range(per_agg):
            event = JobProgressed(worker_id="worker-0a1b2c3d", attempt=1, progress=f"step {k}")
            stored = await executor.append("job", f"job-{tag}-{i}", [event], pos)
            pos = stored[-1].position

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(aggs)))
    return aggs * per_agg / (time.perf_counter() - start)


async def our_execute(store: JetStreamEventStore, aggs: int, per_agg: int, tag: str) -> float:
    spec = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})
    executor = CommandExecutor(store)

    async def one(i: int) -> None:
        job = f"job-x{tag}-{i}"
        await executor.execute("job", job, DispatchJob(spec=spec))
        await executor.execute("job", job, RecordStatus(status="running", attempt=1))
        for k in range(per_agg - 2):
            await executor.execute("job", job, RecordStatus(status="running", progress=f"{k}"))

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(aggs)))
    return aggs * per_agg / (time.perf_counter() - start)


def encode_microseconds(n: int) -> tuple[float, float]:
    """CPU per event of the two ways an append serialises: plain (`encode_event`) and sealed
    into the hash chain (`seal`: canonical bytes, sha256, the stored envelope), in µs."""
    event = JobProgressed(worker_id="worker-0a1b2c3d", attempt=1, progress="step 1")
    env = Envelope(str(uuid.uuid4()), "job", "job-bench", 3, datetime.now(UTC), event,
                   causation_id="12345")  # fmt: skip
    prev = "ab" * 32
    plain = min(timeit.repeat(lambda: encode_event(env), number=n, repeat=5))
    sealed = min(timeit.repeat(lambda: seal(env, prev), number=n, repeat=5))
    return plain / n * 1e6, sealed / n * 1e6


def validations_per_second(n: int) -> float:
    spec = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})
    cases = [
        (JobState(status="dispatched", version=1), RecordStatus(status="received", attempt=1)),
        (JobState(status="received", version=2, attempt=1), RecordStatus(status="running")),
        (
            JobState(status="running", version=3, attempt=1),
            RecordStatus(status="running", progress="p"),
        ),
        (
            JobState(status="running", version=3, attempt=1),
            RecordStatus(status="completed", result=1),
        ),
        (JobState(status="completed", version=4, attempt=1), RecordStatus(status="running")),
        (
            JobState(status="running", version=3, attempt=2),
            RecordStatus(status="received", attempt=1),
        ),
        (JobState(status="running", version=3, attempt=1), RequestCancel()),
        (JobState(status="received", version=2, attempt=1), FailJob(reason="stuck", error="x")),
        (JobState(), DispatchJob(spec=spec)),
    ]
    rounds = max(n // len(cases), 1)
    start = time.perf_counter()
    for _ in range(rounds):
        for state, cmd in cases:
            decide("job", state, cmd)
    return rounds * len(cases) / (time.perf_counter() - start)


async def run(rounds: int = 5, subjects: int = 1000, per_subject: int = 10) -> dict[str, Any]:
    with private_nats_server() as server:
        nc = await nats.connect(server.url, name="baker-bench-raw")
        ours = await Client.connect(Options(url=server.url, name="baker-bench"))
        jsm = nc.jsm()
        await provision(ours)
        await jsm.add_stream(
            StreamConfig(name="BENCH_RAW", subjects=["bench.raw.>"], storage=StorageType.FILE)
        )
        await jsm.add_stream(
            StreamConfig(name="BENCH_SEQ", subjects=["bench.seq.>"], storage=StorageType.FILE)
        )
        store = JetStreamEventStore(ours)
        n = subjects * per_subject
        names = ("raw_publish_async", "raw_expected_seq", "append", "execute", "validations")
        samples: dict[str, list[float]] = {k: [] for k in names}
        await our_append(store, 50, 2, "warm")
        for r in range(rounds):
            progress(f"round {r + 1}/{rounds}")
            samples["raw_publish_async"].append(await raw_publish_async(nc, n))
            # Alternate the order so neither side always runs on a warmer server.
            tag = f"r{r}"
            pair = [
                ("raw_expected_seq", raw_expected_seq(nc, subjects, per_subject, tag)),
                ("append", our_append(store, subjects, per_subject, tag)),
            ]
            for name, coro in pair if r % 2 == 0 else reversed(pair):
                samples[name].append(await coro)
            samples["execute"].append(await our_execute(store, subjects // 2, per_subject, f"{r}"))
            samples["validations"].append(validations_per_second(200_000))
        await nc.close()
        await ours.close()
    med = {k: median(v) for k, v in samples.items()}
    doc = {
        "bench": "event-store",
        "machine": machine(),
        "rounds": rounds,
        "messages_per_round": n,
        "samples": samples,
        "median": med,
        "ratio_append_to_raw_expected_seq": med["append"] / med["raw_expected_seq"],
        "targets": {"append_ratio": 0.8, "validations_per_second": 100_000},
    }
    save("event-store", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    med = doc["median"]
    ratio = doc["ratio_append_to_raw_expected_seq"]
    rows = [
        (
            "raw nats-py `publish_async` (pipelined, 1 subject)",
            f"{med['raw_publish_async']:,.0f} msgs/s",
            "",
        ),
        (
            "raw nats-py expected-sequence publish, 1,000 subjects",
            f"{med['raw_expected_seq']:,.0f} msgs/s",
            "baseline",
        ),
        (
            "ours: `append`, 1,000 aggregates",
            f"{med['append']:,.0f} events/s",
            f"{ratio:.0%} of baseline (target ≥ 80%)",
        ),
        (
            "ours: `execute` (decide + append, cached state)",
            f"{med['execute']:,.0f} commands/s",
            f"{med['execute'] / med['raw_expected_seq']:.0%} of baseline",
        ),
        (
            "lifecycle validations (`decide`), one core",
            f"{med['validations']:,.0f} /s",
            "target ≥ 100,000/s",
        ),
    ]
    out = ["| measure | median | note |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)
