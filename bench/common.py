"""Bench helpers: a private nats-server, medians, tables, result files, machine info."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adapters.nats.server import NatsServerMissing, NatsServerProcess, find_nats_server

RESULTS = Path(__file__).parent / "results"


@contextmanager
def private_nats_server() -> Iterator[NatsServerProcess]:
    """A fresh `nats-server -js` in a temp dir, stopped by pid afterwards."""
    with tempfile.TemporaryDirectory(prefix="baker-bench-") as tmp:
        server = NatsServerProcess(Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        binary = find_nats_server()
        nats = subprocess.run(  # noqa: S603
            [binary, "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
    except (NatsServerMissing, OSError, subprocess.SubprocessError):
        nats = "unknown"
    return {
        "nats_server": nats,
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": mem,
        "os": platform.platform(terse=True),
        "python": sys.version.split()[0],
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


def progress(text: str) -> None:
    print(f"  … {text}", file=sys.stderr, flush=True)


def save(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def markdown_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
