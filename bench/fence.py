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

The medians and their ratio to `today` go into the README beside the window the lease leaves,
measured here too: a Brain leads; another takes the next generation by compare-and-set; the
time from that take being stored to the first Brain's fence refusing an append (its watch
delivering the newer record), over `takeovers` takeovers on two connections (p50, p99, max).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import nats
from nats.aio.client import Client as NATS

from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.leader import LeaderRecord
from adapters.nats.streams import provision
from bench.common import machine, markdown_table, median, private_nats_server, progress, save
from services.brain.leadership import Fenced, Leadership

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


async def window(url: str, takeovers: int) -> list[float]:
    """Seconds from another Brain's take being stored until this one's fence refuses."""
    blue = await Client.connect(Options(url=url, name="baker-bench-blue"))
    green = await Client.connect(Options(url=url, name="baker-bench-green"))
    await provision(blue)
    seen: list[float] = []
    for n in range(takeovers):
        old = Leadership(LeaderRecord(blue), f"brain-blue-{n}", "1")
        new = Leadership(LeaderRecord(green), f"brain-green-{n}", "1")
        await old.take()
        lost = asyncio.Event()

        async def on_lost(_leader: Any, lost: asyncio.Event = lost) -> None:
            lost.set()

        await old.watch(on_lost)
        old.check("job")  # leads: no refusal
        await new.take()  # stored when this returns
        taken = time.perf_counter()
        await asyncio.wait_for(lost.wait(), 10)
        with contextlib.suppress(Fenced):
            old.check("job")
            raise RuntimeError("the old Brain was not fenced after hearing of the new one")
        seen.append(time.perf_counter() - taken)
        await old.close()
        await new.close()
    await blue.close()
    await green.close()
    return seen


async def run(
    rounds: int = 5, aggregates: int = 1000, per: int = 5, takeovers: int = 50
) -> dict[str, Any]:
    with private_nats_server() as server:
        gaps = await window(server.url, takeovers)
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
    ordered = sorted(gaps)
    doc = {"machine": machine(), "samples": samples,
           "median": {d: median(v) for d, v in samples.items()},
           "window_ms": {"p50": ordered[len(ordered) // 2] * 1000,
                         "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
                         "max": ordered[-1] * 1000, "takeovers": len(ordered)}}  # fmt: skip
    save("fence", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    base = doc["median"]["today"]
    rows = [
        (d, f"{doc['median'][d]:,.0f} appends/s", f"{doc['median'][d] / base:.0%}") for d in DESIGNS
    ]
    w = doc["window_ms"]
    return (
        markdown_table(rows, ("design", "median", "of today's"))
        + f"\n\nLease window over {w['takeovers']} takeovers (take stored -> old Brain fenced): "
        f"p50 {w['p50']:.2f} ms, p99 {w['p99']:.2f} ms, max {w['max']:.2f} ms"
    )
