"""Hash chain bench (DESIGN §12): what sealing every event into its aggregate's chain costs
the event store's append rate, hashes on against hashes off, in one run on one server.

A few-percent difference drowns in this machine's drift when two long measures are compared
(pairs of 10,000 appends differed by -19 % to +31 % round by round). So the two sides take
turns in many short pairs (2,000 appends each: 500 aggregates, 4 events apiece, as `append`
runs them concurrently), the order swapped every pair, with the daemons' collector settings
(`tune_gc`); the figure is the median of the per-pair ratios, with a bootstrap 90 % interval,
beside the CPU per append of each side (`process_time`, this process: the client).
"""

from __future__ import annotations

import random
import time
from typing import Any

from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import provision
from bench.common import machine, markdown_table, median, private_nats_server, progress, save
from bench.event_store import encode_microseconds, our_append
from services.tuning import tune_gc

AGGREGATES, PER_AGGREGATE = 500, 4
DEFAULT_ROUNDS = 30  # pairs


def interval(ratios: list[float], draws: int = 2000, seed: int = 1) -> tuple[float, float]:
    """A bootstrap 90 % interval of the median of `ratios` (seeded: the same every run)."""
    rnd = random.Random(seed)
    medians = sorted(median([rnd.choice(ratios) for _ in ratios]) for _ in range(draws))
    return medians[int(draws * 0.05)], medians[int(draws * 0.95) - 1]


async def run(rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    """`rounds` pairs (on, off) of 2,000 appends each."""
    tune_gc()
    n = AGGREGATES * PER_AGGREGATE
    rates: dict[str, list[float]] = {"on": [], "off": []}
    cpu_us: dict[str, list[float]] = {"on": [], "off": []}
    with private_nats_server() as server:
        client = await Client.connect(Options(url=server.url, name="bench-chain"))
        await provision(client)
        sides = {"on": JetStreamEventStore(client), "off": JetStreamEventStore(client, chain=False)}
        for name, store in sides.items():  # warm both
            await our_append(store, 100, 2, f"warm{name}")
        for r in range(rounds):
            if r % 10 == 0:
                progress(f"pair {r + 1}/{rounds}")
            for name in ("on", "off") if r % 2 else ("off", "on"):
                began = time.process_time()
                rates[name].append(
                    await our_append(sides[name], AGGREGATES, PER_AGGREGATE, f"p{r}{name}")
                )
                cpu_us[name].append((time.process_time() - began) / n * 1e6)
        await client.close()
    ratios = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    low, high = interval(ratios)
    plain_us, sealed_us = encode_microseconds(100_000)
    doc = {
        "bench": "chain", "machine": machine(), "rounds": rounds, "appends_per_measure": n,
        "samples": {"rate": rates, "cpu_us": cpu_us, "ratio": ratios},
        "median": {"on": median(rates["on"]), "off": median(rates["off"]),
                   "cpu_on_us": median(cpu_us["on"]), "cpu_off_us": median(cpu_us["off"])},
        "ratio": median(ratios), "interval90": [low, high],
        "hash_cost": 1 - median(ratios), "encode_us": {"plain": plain_us, "sealed": sealed_us},
        "targets": {"hash_cost": 0.05},
    }  # fmt: skip
    save("chain", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    m, (low, high) = doc["median"], doc["interval90"]
    rows = [
        ("ours: `append`, hash chain on / off (medians)",
         f"{m['on']:,.0f} / {m['off']:,.0f} events/s", ""),
        ("on / off, median of the per-pair ratios",
         f"**{doc['ratio']:.3f}** (90 % interval {low:.3f} to {high:.3f})",
         f"hashing costs **{doc['hash_cost']:.1%}** of the append rate (target ≤ 5%)"),
        ("client CPU per append, on / off",
         f"{m['cpu_on_us']:.1f} / {m['cpu_off_us']:.1f} µs",
         f"+{m['cpu_on_us'] - m['cpu_off_us']:.1f} µs"),
        ("CPU to encode one event: serialise (off) / seal (on)",
         f"{doc['encode_us']['plain']:.2f} / {doc['encode_us']['sealed']:.2f} µs",
         f"+{doc['encode_us']['sealed'] - doc['encode_us']['plain']:.2f} µs"),
    ]  # fmt: skip
    table = markdown_table(rows, ("measure", "result", "note"))
    return (
        f"{table}\n\n{doc['rounds']} pairs of {doc['appends_per_measure']:,} appends "
        "(500 aggregates, 4 events each), the order swapped every pair."
    )
