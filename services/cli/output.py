"""CLI output: a readable rich table by default, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

# Outside a terminal (pipes, CI logs) rich would wrap at 80 columns; tables read better wide.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True)


def emit_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    as_json: bool = False,
    keys: Sequence[str] | None = None,
) -> None:
    """Print rows as a table, or as a JSON list of objects keyed by `keys` (or columns)."""
    if as_json:
        names = list(keys or columns)
        print(json.dumps([dict(zip(names, row, strict=True)) for row in rows], default=str))
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def fail(message: str, code: int = 1) -> int:
    """Print an error line and return the exit code to use."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.stderr.flush()
    return code


def usage_error(message: str) -> None:
    """A bad argument found after parsing: say so and exit 2, like argparse does."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    raise SystemExit(2)


def describe(doc: dict[str, Any]) -> str:
    """A short human detail for one event document."""
    data = doc.get("data", {})
    kind = doc.get("type", "")
    if kind == "TransitionRejected":
        return f"REJECTED {data.get('attempted')} in {data.get('fromState')}: {data.get('reason')}"
    if kind == "JobDispatched":
        return f"{data.get('jobType')} {orjson.dumps(data.get('payload')).decode()[:70]}"
    for key in ("error", "progress", "detail", "reason"):
        if data.get(key):
            return str(data[key])[:90]
    if data.get("result") is not None:
        return orjson.dumps(data["result"]).decode()[:90]
    return ""


def event_cells(doc: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """(time, event, attempt, worker, detail) of one event document: a timeline row."""
    data = doc.get("data", {})
    return (
        str(doc.get("occurredAt", ""))[11:23],
        str(doc.get("type", "")),
        str(data.get("attempt") or ""),
        str(data.get("workerId") or ""),
        describe(doc),
    )


def timeline_line(doc: dict[str, Any]) -> str:
    when, kind, attempt, worker, detail = event_cells(doc)
    return f"{when}  {kind:<20} {attempt:>2}  {worker:<16} {detail}"
