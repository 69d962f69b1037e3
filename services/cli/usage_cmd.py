"""`baker usage`: tokens and cost of agent jobs by model, day or type, from the Brain API's
usage read model (`GET /api/usage`)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from projections.usage import GROUPS
from services.cli.app_support import api_client, api_json, refused, run_async
from services.cli.output import emit_table
from services.config import Settings

COLUMNS = ("jobs", "calls", "input", "output", "cache read", "cache write", "cost (US$)")


def register(commands: Any) -> None:
    u = commands.add_parser("usage", help="tokens and cost of agent jobs by model, day or type")
    u.add_argument("--by", choices=GROUPS, default="model", help="group by (default: model)")
    u.add_argument("--since", help="first day, YYYY-MM-DD or an ISO-8601 time (UTC day)")
    u.add_argument("--until", help="last day, inclusive")
    u.add_argument("--json", action="store_true", help="the API's JSON document")
    u.set_defaults(handler=cmd_usage)


def cmd_usage(args: argparse.Namespace, settings: Settings) -> int:
    params = {"groupBy": args.by, "since": args.since, "until": args.until}

    async def go() -> int:
        async with api_client(settings) as client:
            status, doc = await api_json(
                client, settings, "GET", "/api/usage", params={k: v for k, v in params.items() if v}
            )
        if status != 200:
            raise refused(status, doc)
        if args.json:
            print(orjson.dumps(doc).decode())
            return 0
        rows = [_cells(r["key"], r) for r in doc["rows"]]
        if doc["rows"]:
            rows.append(_cells("total", doc["total"]))
        emit_table(f"usage by {args.by}", (args.by, *COLUMNS), rows)
        return 0

    return run_async(go())


def _cells(key: str, row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        key, row["jobs"], row["calls"], row["inputTokens"], row["outputTokens"],
        row["cacheReadTokens"], row["cacheWriteTokens"], f"{row['costUsd']:.6f}",
    )  # fmt: skip
