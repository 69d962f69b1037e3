"""NATS client bench: our client against nats-py's public API.

One private nats-server; each round runs every side in its own process, in an order that
rotates from round to round (so no side always meets a warmer server), and each process runs
the three hot-path patterns of the system:
  a  JetStream publishes awaiting their PubAck, 1,000 subjects, each with the
     expected-last-subject-sequence header (the event store's append); the subjects
     concurrently, each subject's publishes in sequence
  b  a durable pull consumer: fetch batches and ack every message (the worker's and ingest's)
  c  a small request/reply loop: one request at a time, answered on the same connection
Reported: messages (or requests) per second and the client process's CPU per message (from
`time.process_time`), medians of the rounds and their spread. Streams are in memory, so the
server's disk does not hide the differences between clients.

The sides: `ours` (adapters/nats/client.py, what the system runs on), `public` (`nats.connect`
and nats-py's public API only). Until the switch to our client there was a third, `patched`
(nats-py with its internals replaced, as the system then ran); those patches are gone. A side
runs as `python -m bench.nats_client SIDE URL TAG` and prints one JSON line.
"""

# Each side imports its client inside its function: ours needs no nats-py at all.
# ruff: noqa: PLC0415
from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import machine, median, private_nats_server, progress, save

SIDES = ("ours", "public")
SUBJECTS, PER_SUBJECT = 1000, 20  # a: 20,000 publishes
PULLED, BATCH = 20_000, 100  # b
REQUESTS = 3_000  # c
PAYLOAD = b'{"eventId":"00000000-0000-0000-0000-000000000000","type":"JobProgressed","aggregate":"job","aggregateId":"job-bench-000000","version":1,"occurredAt":"2026-11-22T10:00:00.000000Z","schema":1,"data":{"workerId":"worker-0a1b2c3d","attempt":1,"progress":"step"}}'  # noqa: E501
EXPECT = "Nats-Expected-Last-Subject-Sequence"
STREAMS = (
    {"name": "BENCH_A", "subjects": ["bench.a.>"], "storage": "memory"},
    {"name": "BENCH_B", "subjects": ["bench.b.>"], "storage": "memory"},
)


async def timed(n: int, work: Callable[[], Awaitable[None]]) -> dict[str, float]:
    """Messages per second and client CPU microseconds per message of `work`."""
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"rate": n / wall, "cpu_us": cpu / n * 1e6}


# --- our client ------------------------------------------------------------------------------


async def ours(url: str, tag: str) -> dict[str, dict[str, float]]:
    from adapters.nats import jsapi
    from adapters.nats.client import Client, Options
    from adapters.nats.fetch import PullConsumer
    from adapters.nats.message import Msg, parse_pub_ack

    nc = await Client.connect(Options(url=url, name="bench-ours"))

    async def subject(i: int) -> None:
        last, name = 0, f"bench.a.{tag}.{i}"
        for _ in range(PER_SUBJECT):
            msg = await nc.request(name, PAYLOAD, headers={EXPECT: str(last)})
            last = parse_pub_ack(name, msg).seq

    async def publishes() -> None:
        await asyncio.gather(*(subject(i) for i in range(SUBJECTS)))

    durable = f"pull-{tag}"
    for future in [nc.request(f"bench.b.{tag}", PAYLOAD) for _ in range(PULLED)]:
        parse_pub_ack("bench.b", await future)
    config = {"durable_name": durable, "ack_policy": "explicit", "filter_subject": f"bench.b.{tag}"}
    await jsapi.add_consumer(nc, "BENCH_B", {**config, "max_ack_pending": -1})
    puller = PullConsumer(nc, "BENCH_B", durable)

    async def pulls() -> None:
        got = 0
        while got < PULLED:
            for msg in await puller.fetch(BATCH, wait=5.0):
                msg.ack()
                got += 1
        await nc.flush()

    def respond(msg: Msg) -> None:
        msg.respond(msg.data)

    nc.subscribe(f"bench.c.{tag}", respond)

    async def requests() -> None:
        for _ in range(REQUESTS):
            await nc.request(f"bench.c.{tag}", b"ping")

    out = {
        "a": await timed(SUBJECTS * PER_SUBJECT, publishes),
        "b": await timed(PULLED, pulls),
        "c": await timed(REQUESTS, requests),
    }
    await nc.close()
    return out


# --- nats-py, public API only ------------------------------------------------------------------


async def public(url: str, tag: str) -> dict[str, dict[str, float]]:
    import nats
    from nats.aio.msg import Msg as NatsMsg
    from nats.js.api import AckPolicy, ConsumerConfig

    nc = await nats.connect(url, name="bench-public")
    js = nc.jetstream()

    async def subject(i: int) -> None:
        last, name = 0, f"bench.a.{tag}.{i}"
        for _ in range(PER_SUBJECT):
            last = (await js.publish(name, PAYLOAD, headers={EXPECT: str(last)})).seq

    async def publishes() -> None:
        await asyncio.gather(*(subject(i) for i in range(SUBJECTS)))

    durable = f"pull-{tag}"
    pending = [await js.publish_async(f"bench.b.{tag}", PAYLOAD) for _ in range(PULLED)]
    await asyncio.gather(*pending)
    config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT, max_ack_pending=-1)
    sub = await js.pull_subscribe(f"bench.b.{tag}", durable, stream="BENCH_B", config=config)

    async def pulls() -> None:
        got = 0
        while got < PULLED:
            for msg in await sub.fetch(BATCH, timeout=5.0):
                await msg.ack()
                got += 1
        await nc.flush()

    async def respond(msg: NatsMsg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(f"bench.c.{tag}", cb=respond)

    async def requests() -> None:
        for _ in range(REQUESTS):
            await nc.request(f"bench.c.{tag}", b"ping", timeout=2.0)

    out = {
        "a": await timed(SUBJECTS * PER_SUBJECT, publishes),
        "b": await timed(PULLED, pulls),
        "c": await timed(REQUESTS, requests),
    }
    await nc.close()
    return out


# --- the run -----------------------------------------------------------------------------------


async def side(name: str, url: str, tag: str) -> dict[str, dict[str, float]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.nats_client", name, url, tag,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"bench side {name} failed: {err.decode()[-2000:]}")
    result: dict[str, dict[str, float]] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def run(rounds: int = 5) -> dict[str, Any]:
    from adapters.nats import jsapi
    from adapters.nats.client import Client

    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        s: {w: {"rate": [], "cpu_us": []} for w in "abc"} for s in SIDES
    }
    with private_nats_server() as server:
        nc = await Client.connect(server.url)
        for config in STREAMS:
            await jsapi.add_stream(nc, config)
        await nc.close()
        for r in range(rounds):
            turn = r % len(SIDES)
            order = SIDES[turn:] + SIDES[:turn]
            progress(f"round {r + 1}/{rounds}: {', '.join(order)}")
            for name in order:
                for work, got in (await side(name, server.url, f"r{r}{name}")).items():
                    for key, value in got.items():
                        samples[name][work][key].append(value)
    doc = {
        "bench": "nats-client",
        "machine": machine(),
        "rounds": rounds,
        "per_round": {"a": SUBJECTS * PER_SUBJECT, "b": PULLED, "c": REQUESTS},
        "samples": samples,
        "median": {
            s: {w: {k: median(v) for k, v in got.items()} for w, got in works.items()}
            for s, works in samples.items()
        },
    }
    save("nats-client", doc)
    return doc


WORKS = {
    "a": "JetStream publish + PubAck, 1,000 subjects, expected seq",
    "b": "pull fetch (batches of 100) + ack each",
    "c": "request/reply, one at a time",
}


def spread(values: list[float]) -> str:
    """(max - min) / 2 as a share of the median."""
    mid = statistics.median(values)
    return f"±{(max(values) - min(values)) / 2 / mid:.0%}" if mid else ""


def report(doc: dict[str, Any]) -> str:
    rows = ["| pattern | side | msgs/s (median, spread) | client CPU µs/msg | vs public |",
            "|---|---|---|---|---|"]  # fmt: skip
    for work, title in WORKS.items():
        base = doc["median"]["public"][work]["rate"]
        for name in SIDES:
            got = doc["samples"][name][work]
            med = doc["median"][name][work]
            rows.append(
                f"| {title} | {name} | {med['rate']:,.0f} {spread(got['rate'])} | "
                f"{med['cpu_us']:.1f} {spread(got['cpu_us'])} | {med['rate'] / base:.2f}x |"
            )
    return "\n".join(rows)


def _main(argv: list[str]) -> int:
    name, url, tag = argv
    sides = {"ours": ours, "public": public}
    print(json.dumps(asyncio.run(sides[name](url, tag))))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
