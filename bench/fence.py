"""Fence bench: what a server-enforced fence would cost, against the append we make today.

The Brain's fence is a lease (`services/brain/leadership.py`). A fence the server enforces
needs the leader's generation checked in the same publish that JetStream checks the
aggregate's last sequence in. On nats-server 2.15 a message carries one expected-last-subject-
sequence check (`Nats-Expected-Last-Subject-Sequence`, optionally on another subject through
`…-Subject`), and the end-of-batch commit of an atomic batch (`Nats-Batch-Commit: eob`) is not
checked at all. So the designs are, measured here on one private server, pipelined over 1,000
aggregates as the event store appends:

  today      one message: the aggregate check (what we ship)
  batch      an atomic batch of two stored messages: a fence marker checking the generation
             subject, then the event checking its aggregate (a second message per event);
             at most 50 batches may be open on a stream, so at most 50 appends in flight
  generation one message checking the generation subject only: no per-aggregate check

The medians and their ratio to `today` go into the README beside the window the lease leaves.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import nats
from nats.aio.client import Client as NATS

from bench.common import machine, markdown_table, median, private_nats_server, progress, save

PAYLOAD = b'{"type":"JobProgressed","aggregate":"job","data":{"progress":"step"}}'
STREAM = "BENCH_FENCE"
LEADER = "fence.leader.brain"
DESIGNS = ("today", "batch", "generation")


async def _request(nc: NATS, subject: str, headers: dict[str, str]) -> dict[str, Any]:
    msg = await nc.request(subject, PAYLOAD, timeout=10, headers=headers)
    return json.loads(msg.data) if msg.data else {}


async def _append(nc: NATS, design: str, subject: str, last: int, leader: int) -> int:
    msg_id = {"Nats-Msg-Id": uuid.uuid4().hex}
    if design == "today":
        ack = await _request(
            nc, subject, {**msg_id, "Nats-Expected-Last-Subject-Sequence": str(last)}
        )
    elif design == "generation":
        ack = await _request(nc, subject, {
            **msg_id, "Nats-Expected-Last-Subject-Sequence": str(leader),
            "Nats-Expected-Last-Subject-Sequence-Subject": LEADER,
        })  # fmt: skip
    else:
        batch = uuid.uuid4().hex
        await _request(nc, f"fence.marker.{subject.rsplit('.', 1)[-1]}", {
            "Nats-Batch-Id": batch, "Nats-Batch-Sequence": "1",
            "Nats-Expected-Last-Subject-Sequence": str(leader),
            "Nats-Expected-Last-Subject-Sequence-Subject": LEADER,
        })  # fmt: skip
        ack = await _request(nc, subject, {
            **msg_id, "Nats-Batch-Id": batch, "Nats-Batch-Sequence": "2",
            "Nats-Batch-Commit": "1", "Nats-Expected-Last-Subject-Sequence": str(last),
        })  # fmt: skip
    if "error" in ack:
        raise RuntimeError(f"{design}: {ack['error']}")
    return int(ack["seq"])


BATCHES_IN_FLIGHT = 50  # the server's limit per stream; more are abandoned as incomplete


async def measure(nc: NATS, design: str, aggregates: int, per: int, tag: str, leader: int) -> float:
    limit = asyncio.Semaphore(BATCHES_IN_FLIGHT if design == "batch" else aggregates)

    async def one(i: int) -> None:
        last = 0
        for _ in range(per):
            async with limit:
                last = await _append(nc, design, f"fence.{tag}.{i}", last, leader)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(aggregates)))
    return aggregates * per / (time.perf_counter() - start)


async def run(rounds: int = 5, aggregates: int = 1000, per: int = 5) -> dict[str, Any]:
    with private_nats_server() as server:
        nc = await nats.connect(server.url, name="baker-bench-fence")
        config = {"name": STREAM, "subjects": ["fence.>"], "storage": "file",
                  "allow_atomic": True, "duplicate_window": 120_000_000_000}  # fmt: skip
        await nc.request(f"$JS.API.STREAM.CREATE.{STREAM}", json.dumps(config).encode())
        leader = int((await _request(nc, LEADER, {}))["seq"])
        samples: dict[str, list[float]] = {d: [] for d in DESIGNS}
        for r in range(rounds):
            progress(f"round {r + 1}/{rounds}")
            order = DESIGNS if r % 2 == 0 else tuple(reversed(DESIGNS))
            for design in order:
                rate = await measure(nc, design, aggregates, per, f"{design}{r}", leader)
                samples[design].append(rate)
        await nc.close()
    doc = {"machine": machine(), "samples": samples,
           "median": {d: median(v) for d, v in samples.items()}}  # fmt: skip
    save("fence", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    base = doc["median"]["today"]
    rows = [
        (d, f"{doc['median'][d]:,.0f} appends/s", f"{doc['median'][d] / base:.0%}") for d in DESIGNS
    ]
    return markdown_table(rows, ("design", "median", "of today's"))
