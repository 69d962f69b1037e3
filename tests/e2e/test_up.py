"""`baker up` on the embedded default: starts nats-server, stops it, keeps the data."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from adapters.eventstore import NEW
from adapters.nats.connection import NatsSettings, connect
from adapters.nats.event_store import JetStreamEventStore
from domain.events import JobDispatched
from tests.e2e.procs import BakerProcess, pid_alive


def start_up(data_dir: Path) -> tuple[BakerProcess, str, int]:
    proc = BakerProcess("up", env={"BAKER_DATA_DIR": str(data_dir), "BAKER_NATS_URL": ""})
    line = proc.wait_for("baker up: NATS")
    match = re.search(r"NATS (nats://\S+) \(embedded, pid (\d+)\)", line)
    assert match, line
    proc.wait_for("running;")
    return proc, match.group(1), int(match.group(2))


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # polling the process table for the child's exit
    return True


async def test_up_runs_embedded_nats_and_sigterm_leaves_nothing_behind(tmp_path: Path) -> None:
    proc, url, nats_pid = start_up(tmp_path / "data")
    assert pid_alive(nats_pid)
    nc = await connect(NatsSettings(url=url))
    store = JetStreamEventStore(nc)
    await store.append("job", "job-kept", [JobDispatched(job_type="command", payload={})], NEW)
    await store.close()
    await nc.close()
    assert proc.stop(signal.SIGTERM) == 0
    assert wait_gone(nats_pid)

    again, _, pid2 = start_up(tmp_path / "data")
    assert any("event log holds 1 events" in line for line in again.lines)
    assert again.stop(signal.SIGINT) == 0
    assert wait_gone(pid2)


def test_a_killed_up_takes_its_nats_server_with_it(tmp_path: Path) -> None:
    proc, _, nats_pid = start_up(tmp_path / "data")
    proc.stop(signal.SIGKILL)
    assert wait_gone(nats_pid)


def test_baker_help_lists_the_commands() -> None:
    proc = BakerProcess("--help")
    proc.wait_for("lifecycle")
    assert proc.wait() == 0
