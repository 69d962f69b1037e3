"""The embedded nats-server runs batch-scheduled unless told otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.nats.server import NatsServerProcess


def _policies(pid: int) -> set[int]:
    return {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def test_every_server_thread_is_batch_scheduled(nats_server: NatsServerProcess) -> None:
    assert nats_server.pid is not None
    assert _policies(nats_server.pid) == {os.SCHED_BATCH}


def test_normal_scheduling_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAKER_NATS_SCHED", "normal")
    server = NatsServerProcess(tmp_path / "nats")
    server.start()
    try:
        assert server.pid is not None
        assert _policies(server.pid) == {os.SCHED_OTHER}
    finally:
        server.stop()


def test_baker_up_names_a_bad_policy(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BAKER_NATS_URL"}
    env.update(BAKER_NATS_SCHED="fifo", BAKER_DATA_DIR=str(tmp_path))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "baker"), "up"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "BAKER_NATS_SCHED must be one of batch, normal, not 'fifo'" in done.stderr
    assert not list(tmp_path.glob("nats/ports/*.ports"))  # no server was started
