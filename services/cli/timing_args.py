"""`baker dispatch` options for delayed and retried jobs and concurrency keys (DESIGN §11); the
API validates them (a bad value is its 400, naming the field)."""

from __future__ import annotations

import argparse
from typing import Any


def add_timing_args(parser: argparse.ArgumentParser) -> None:
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--delay", type=float, metavar="SECONDS", help="queue it this much later")
    start.add_argument("--run-at", metavar="ISO-8601", help="queue it at this time (with a zone)")
    parser.add_argument(
        "--retry", type=int, metavar="ATTEMPTS", help="retry a failure: at most this many runs"
    )
    parser.add_argument("--retry-initial", type=float, metavar="SECONDS", help="first backoff")
    parser.add_argument("--retry-multiplier", type=float, help="each backoff times this")
    parser.add_argument("--retry-max", type=float, metavar="SECONDS", help="backoff cap")
    parser.add_argument(
        "--concurrency-key", metavar="KEY", help="at most --concurrency-limit jobs of KEY at once"
    )
    parser.add_argument(
        "--concurrency-limit", type=int, metavar="N", help="jobs of the key at once (default 1)"
    )


def timing_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request's `delaySeconds`/`runAt`/`retry`/`concurrencyKey`/`concurrencyLimit` from
    the parsed options."""
    out: dict[str, Any] = {}
    if args.delay is not None:
        out["delaySeconds"] = args.delay
    if args.run_at is not None:
        out["runAt"] = args.run_at
    policy = {
        "maxAttempts": args.retry,
        "initialSeconds": args.retry_initial,
        "multiplier": args.retry_multiplier,
        "maxSeconds": args.retry_max,
    }
    if any(v is not None for v in policy.values()):
        out["retry"] = {k: v for k, v in policy.items() if v is not None}
    if args.concurrency_key is not None:
        out["concurrencyKey"] = args.concurrency_key
    if args.concurrency_limit is not None:
        out["concurrencyLimit"] = args.concurrency_limit
    return out
