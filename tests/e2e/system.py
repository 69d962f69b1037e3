"""A whole `baker up` for e2e tests: its URL, token and environment."""

from __future__ import annotations

import re
import secrets
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services import embedded
from tests.e2e.procs import BakerProcess

COMMANDS = "echo,sleep,ls,date,uptime,cat"


@dataclass
class System:
    proc: BakerProcess
    url: str
    token: str
    data_dir: Path
    nats_url: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def nats_as(self, role: str) -> str:
        """The embedded server's URL with `role`'s credentials (what `baker nats-url ROLE`
        prints): the server admits nobody else (DESIGN §12)."""
        url = embedded.role_url(self.data_dir, role)
        assert url is not None, "no baker up running on this data dir"
        return url

    def env(self) -> dict[str, str]:
        """Environment for CLI processes talking to this system: each command finds the
        embedded server through the data dir and connects as its own role."""
        return {
            "BAKER_API_URL": self.url, "BAKER_API_TOKEN": self.token,
            "BAKER_NATS_URL": "", "BAKER_DATA_DIR": str(self.data_dir),
            "BAKER_LOG_LEVEL": "WARNING",
        }  # fmt: skip


def up_env(data_dir: Path, token: str) -> dict[str, str]:
    return {
        "BAKER_DATA_DIR": str(data_dir), "BAKER_NATS_URL": "", "BAKER_API_PORT": "0",
        "BAKER_API_TOKEN": token, "BAKER_ALLOWED_COMMANDS": COMMANDS,
        "BAKER_SSE_KEEPALIVE_SECONDS": "0.3", "BAKER_HEARTBEAT_SECONDS": "1",
    }  # fmt: skip


def start(data_dir: Path, token: str | None = None, workers: int = 2) -> System:
    token = token or secrets.token_hex(16)
    proc = BakerProcess("up", "--workers", str(workers), env=up_env(data_dir, token))
    nats = re.search(r"NATS (nats://\S+)", proc.wait_for("baker up: NATS"))
    dash = re.search(r"dashboard (http://\S+?)/?$", proc.wait_for("baker up: dashboard"))
    assert nats and dash
    proc.wait_for("running;")
    return System(proc, dash.group(1), token, data_dir, nats.group(1))


@contextmanager
def running(data_dir: Path, token: str | None = None, workers: int = 2) -> Iterator[System]:
    system = start(data_dir, token, workers)
    try:
        yield system
    finally:
        if system.proc.proc.poll() is None:
            assert system.proc.stop(signal.SIGTERM, timeout=60) == 0


@contextmanager
def running_with(
    data_dir: Path, extra_env: dict[str, str], token: str | None = None, workers: int = 2
) -> Iterator[System]:
    """`running`, with more environment for `baker up` (e.g. `BAKER_CORS_ORIGINS`)."""
    token = token or secrets.token_hex(16)
    env = {**up_env(data_dir, token), **extra_env}
    proc = BakerProcess("up", "--workers", str(workers), env=env)
    try:
        nats = re.search(r"NATS (nats://\S+)", proc.wait_for("baker up: NATS"))
        dash = re.search(r"dashboard (http://\S+?)/?$", proc.wait_for("baker up: dashboard"))
        assert nats and dash
        proc.wait_for("running;")
        yield System(proc, dash.group(1), token, data_dir, nats.group(1))
    finally:
        if proc.proc.poll() is None:
            assert proc.stop(signal.SIGTERM, timeout=60) == 0
