"""Bench helpers: a private nats-server, medians, tables, result files, machine info."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from adapters.nats.cluster import LocalCluster
from adapters.nats.server import NatsServerMissing, NatsServerProcess, find_nats_server
from domain import nats_config
from services import embedded

RESULTS = Path(__file__).parent / "results"


@contextmanager
def private_nats_server(*, roles: bool = False) -> Iterator[NatsServerProcess]:
    """A fresh `nats-server -js` in a temp dir, stopped by pid afterwards; `roles`: with one
    user per role, as `baker up` runs it (DESIGN §12; `role_url` gives each one's URL)."""
    with tempfile.TemporaryDirectory(prefix="baker-bench-") as tmp:
        config = embedded.prepare_roles(Path(tmp)) if roles else None
        server = NatsServerProcess(Path(tmp), config=config)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@asynccontextmanager
async def private_cluster(nodes: int = 3) -> AsyncIterator[LocalCluster]:
    """A fresh local JetStream cluster in a temp dir (no role users, as `baker cluster up`
    runs it), ready to use, stopped by pid afterwards."""
    with tempfile.TemporaryDirectory(prefix="baker-bench-cluster-") as tmp:
        cluster = LocalCluster(Path(tmp), nodes)
        cluster.start()
        try:
            await cluster.wait_ready()
            yield cluster
        finally:
            cluster.stop()


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


def markdown_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, part: str = "self") -> float:
    """CPU (user + system) from /proc of a process (`self`), of the children it has reaped
    (`children`), or both (`all`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
    used = {"self": own, "children": reaped, "all": own + reaped}[part]
    return used / _TICK


def child_pids(pid: int) -> list[int]:
    """The live children of a process."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(x) for x in (task / "children").read_text().split()]
    return out


class CpuMeter:
    """CPU used by named parts of a system between `start` and `stop`, per unit of work.
    A part is a list of (pid, `self` | `children` | `all`)."""

    def __init__(self, parts: dict[str, list[tuple[int, str]]]) -> None:
        self.parts = parts
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {
            name: sum(cpu_seconds(pid, part) for pid, part in pids)
            for name, pids in self.parts.items()
        }

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> None:
        now = self._now()
        self.used = {name: now[name] - self._start[name] for name in now}

    def per(self, units: int) -> dict[str, float]:
        """Milliseconds of CPU per unit, by part, and `total`."""
        out = {name: used / units * 1000 for name, used in self.used.items()}
        out["total"] = sum(out.values())
        return out


def role_url(server: NatsServerProcess, role: str) -> str:
    """`server`'s URL with `role`'s credentials (the URL alone for a server without roles)."""
    known = embedded.passwords(server.store_dir)
    if not known:
        return server.url
    return nats_config.role_url(server.url, role, known[role])
