"""Projector bench: our projector against raw nats-py fetch+ack of the same events, and a
rebuild of a large log, in one run on one private nats-server.

The events are generated through the event store: whole job lifecycles (dispatched, received,
running, completed) appended concurrently.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from adapters.eventstore import NEW, Position
from adapters.nats.connection import NatsSettings, connect
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import EVENTS_STREAM, provision
from bench.common import machine, median, private_nats_server, progress, save
from domain.events import JobCompleted, JobDispatched, JobReceived, JobStarted
from services.rebuild import build, rebuild

LIFECYCLE = (
    JobDispatched(job_type="command", payload={"command": "echo hi"}, timeout_seconds=30),
    JobReceived(worker_id="worker-0a1b2c3d", attempt=1),
    JobStarted(worker_id="worker-0a1b2c3d", attempt=1),
    JobCompleted(
        worker_id="worker-0a1b2c3d",
        attempt=1,
        result={"exitCode": 0, "stdout": "hi\n"},
        duration_ms=3,
    ),
)


async def generate(store: JetStreamEventStore, events: int, tag: str) -> int:
    """`events` events as whole job lifecycles, 500 jobs in flight at a time."""
    jobs = events // len(LIFECYCLE)

    async def one(i: int) -> None:
        pos = NEW
        for event in LIFECYCLE:
            stored = await store.append("job", f"job-{tag}-{i}", [event], pos)
            pos = Position(stored[-1].seq, stored[-1].envelope.version)

    started = time.monotonic()
    for start in range(0, jobs, 500):
        await asyncio.gather(*(one(i) for i in range(start, min(jobs, start + 500))))
        if start % 25_000 == 0 and start:
            rate = start * len(LIFECYCLE) / (time.monotonic() - started)
            progress(f"generated {start * len(LIFECYCLE):,} events ({rate:,.0f}/s)")
    return await store.head_seq()


async def raw_fetch_ack(nc: NATS, start: int, count: int, name: str) -> float:
    """Plain nats-py: a durable pull consumer, fetch in batches, ack every message."""
    jsm = nc.jsm()
    await jsm.add_consumer(EVENTS_STREAM, ConsumerConfig(
        durable_name=name, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
        ack_policy=AckPolicy.EXPLICIT, max_ack_pending=20_000,
    ))  # fmt: skip
    psub = await nc.jetstream().pull_subscribe_bind(durable=name, stream=EVENTS_STREAM)
    got = 0
    began = time.perf_counter()
    while got < count:
        try:
            msgs = await psub.fetch(min(1000, count - got), timeout=5)
        except NatsTimeout:
            continue
        for msg in msgs:
            await msg.ack()
        got += len(msgs)
    rate = count / (time.perf_counter() - began)
    await psub.unsubscribe()
    await jsm.delete_consumer(EVENTS_STREAM, name)
    return rate


async def ours(store: JetStreamEventStore, upto: int, count: int) -> float:
    """Our projector building a fresh read model over the same events."""
    with tempfile.TemporaryDirectory(prefix="baker-bench-") as tmp:
        began = time.perf_counter()
        last = await build(store, Path(tmp) / "rm.db", upto=upto)
        assert last == upto
        return count / (time.perf_counter() - began)


async def run(
    rounds: int = 3, events: int = 100_000, rebuild_events: int = 1_000_000
) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"raw_fetch_ack": [], "projector": []}
    with private_nats_server() as server:
        nc = await connect(NatsSettings(url=server.url, name="bench-projector"))
        await provision(nc.jsm())
        store = JetStreamEventStore(nc)
        progress(f"generating {events:,} events through the event store")
        head = await generate(store, events, "p")
        for r in range(rounds):
            progress(f"round {r + 1}/{rounds}")
            pair = [
                ("raw_fetch_ack", raw_fetch_ack(nc, 1, head, f"raw{r}")),
                ("projector", ours(store, head, head)),
            ]
            for name, coro in pair if r % 2 == 0 else reversed(pair):
                samples[name].append(await coro)
        rebuilt: dict[str, Any] = {}
        if rebuild_events:
            progress(f"generating {rebuild_events - head:,} more events for the rebuild")
            total = await generate(store, rebuild_events - head, "r")
            with tempfile.TemporaryDirectory(prefix="baker-bench-") as tmp:
                db = Path(tmp) / "readmodel.db"
                last_report = [0.0]

                def report(seq: int, target: int, rate: float) -> None:
                    if time.monotonic() - last_report[0] > 10:
                        last_report[0] = time.monotonic()
                        progress(f"rebuild at {seq:,}/{target:,} ({rate:,.0f} events/s)")

                result = await rebuild(store, db, progress=report)
                rebuilt = {
                    "events": total,
                    "seconds": result.seconds,
                    "events_per_s": total / result.seconds,
                }
        await store.close()
        await nc.close()
    med = {k: median(v) for k, v in samples.items()}
    doc = {
        "bench": "projector", "machine": machine(), "rounds": rounds, "events": head,
        "samples": samples, "median": med, "ratio": med["projector"] / med["raw_fetch_ack"],
        "rebuild": rebuilt, "targets": {"ratio": 0.7, "rebuild_1m_seconds": 120},
    }  # fmt: skip
    save("projector", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    m = doc["median"]
    rows = [
        f"| raw nats-py durable pull, fetch 1,000 + ack each | {m['raw_fetch_ack']:,.0f} events/s | baseline |",  # noqa: E501
        f"| ours: projector into SQLite (all projections, one transaction per batch with the checkpoint) | {m['projector']:,.0f} events/s | **{doc['ratio']:.0%}** of baseline (target ≥ 70%) |",  # noqa: E501
    ]
    if doc["rebuild"]:
        r = doc["rebuild"]
        took = f"{r['seconds']:.0f} s ({r['events_per_s']:,.0f} events/s)"
        what = f"rebuild of {r['events']:,} events (new generation + swap)"
        rows.append(f"| {what} | {took} | target ≤ 120 s |")
    head = "| measure | result | note |\n|---|---|---|"
    return (
        head
        + "\n"
        + "\n".join(rows)
        + f"\n\n{doc['events']:,} events; medians of {doc['rounds']} rounds."
    )
