"""CLI output: a readable rich table by default, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

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
