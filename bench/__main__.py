"""`python -m bench <name>`: run a benchmark, print its table, save bench/results/<name>.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bench import (
    agent,
    api,
    batch,
    chain,
    cluster,
    delayed,
    event_store,
    fence,
    nats_client,
    pipeline,
    projector,
    projector_pg,
    redaction,
    schedules,
)

BENCHES = {
    "agent": agent,
    "api": api,
    "batch": batch,
    "chain": chain,
    "cluster": cluster,
    "delayed": delayed,
    "event-store": event_store,
    "fence": fence,
    "nats-client": nats_client,
    "pipeline": pipeline,
    "projector": projector,
    "projector-pg": projector_pg,
    "redaction": redaction,
    "schedules": schedules,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=sorted(BENCHES))
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="runs to take the median of (default 5; chain: 30 pairs)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw result document")
    args = parser.parse_args(argv)
    module = BENCHES[args.name]
    rounds = args.rounds or getattr(module, "DEFAULT_ROUNDS", 5)
    print(f"bench {args.name}: {rounds} rounds", file=sys.stderr)
    doc = asyncio.run(module.run(rounds=rounds))
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        m = doc["machine"]
        print(
            f"\nMachine: {m['cpu']}, {m['cores']} cores, {m['memory']}, {m['os']}, "
            f"Python {m['python']}, {m['nats_server']}\n"
        )
        print(module.report(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
