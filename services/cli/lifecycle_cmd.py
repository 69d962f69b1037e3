"""`baker lifecycle KIND`: print a lifecycle's states and transition table."""

from __future__ import annotations

import argparse
import json
from typing import Any

from domain.lifecycle import LIFECYCLES, table_rows
from services.cli.output import emit_table


def register(commands: Any) -> None:
    p = commands.add_parser(
        "lifecycle",
        help="print a lifecycle's transition table",
        description="Print the states and transition table of an aggregate's lifecycle.",
    )
    p.add_argument("kind", choices=sorted(LIFECYCLES), help="aggregate kind")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, _settings: object) -> int:
    spec = LIFECYCLES[args.kind].spec
    rows = table_rows(spec)
    if args.json:
        print(
            json.dumps(
                {
                    "name": spec.name,
                    "states": list(spec.states),
                    "initial": spec.initial,
                    "terminal": sorted(spec.terminal),
                    "guards": dict(spec.guards),
                    "transitions": [
                        dict(zip(("trigger", "from", "to", "guard", "event"), r, strict=True))
                        for r in rows
                    ],
                }
            )
        )
        return 0
    terminal = ", ".join(sorted(spec.terminal)) or "none"
    emit_table(
        f"{spec.name} lifecycle — states: {', '.join(spec.states)} (terminal: {terminal})",
        ("trigger", "from", "to", "guard", "event"),
        rows,
    )
    for name, text in spec.guards.items():
        print(f"  {name}: {text}")
    return 0
