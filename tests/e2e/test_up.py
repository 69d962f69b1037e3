"""`baker up` on the embedded default: everything in one process, nothing left behind, and
the data survives a restart."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from adapters.nats.client import Client
from adapters.nats.connector import NatsUnavailable, Options
from services import embedded
from tests.e2e.procs import BakerProcess, pid_alive
from tests.e2e.system import running, start
from tests.polling import until, until_sync


def wait_gone(pid: int) -> bool:
    until_sync(lambda: not pid_alive(pid), f"process {pid} gone", timeout=10)
    return True


def nats_pid(proc: BakerProcess) -> int:
    line = next(x for x in proc.lines if "baker up: NATS" in x)
    return int(line.rsplit("pid ", 1)[1].rstrip(")"))


async def completed(url: str, headers: dict[str, str], command: str) -> str:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:
        job = (
            await c.post("/api/jobs", json={"type": "command", "payload": {"command": command}})
        ).json()

        async def done() -> bool:
            return bool((await c.get(f"/api/jobs/{job['id']}")).json().get("status") == "completed")

        await until(done, f"{job['id']} completed", timeout=30)
        return str(job["id"])


async def test_up_runs_everything_and_a_restart_keeps_the_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running(data, token="t0k") as first:
        job_id = await completed(first.url, first.headers, "echo before-restart")
        pid = nats_pid(first.proc)
        # The CLI, given only the data dir, finds this `baker up`'s embedded server.
        env = {"BAKER_NATS_URL": "", "BAKER_DATA_DIR": str(data), "BAKER_LOG_LEVEL": "WARNING"}
        history = BakerProcess("history", job_id, env=env)
        history.wait_for("JobCompleted")
        assert history.wait() == 0
        await roles_are_on(first.nats_url, data, env)
    assert wait_gone(pid)  # SIGTERM (in `running`) stopped the child nats-server too
    assert not (data / "nats.url").exists()  # and the record of where it was is gone
    said = "\n".join(first.proc.lines)  # baker up's whole output, its logs included
    assert "generated NATS passwords" in said
    passwords = embedded.passwords(data)
    assert passwords is not None
    assert not any(pw in said for pw in passwords.values())

    with running(data, token="t0k") as second:
        assert any(
            "event log holds" in line and "holds 0 " not in line for line in second.proc.lines
        )
        async with httpx.AsyncClient(base_url=second.url, headers=second.headers) as c:
            earlier = (await c.get(f"/api/jobs/{job_id}")).json()
        assert earlier["status"] == "completed"
        assert earlier["result"]["stdout"] == "before-restart\n"
        await completed(second.url, second.headers, "echo after-restart")
    assert embedded.passwords(data) == passwords  # the second start reused them


async def roles_are_on(plain_url: str, data: Path, env: dict[str, str]) -> None:
    """DESIGN §12: the embedded server admits only its roles' users; `baker nats-url ROLE`
    gives an operator a role's URL; no password is printed or logged."""
    with pytest.raises(NatsUnavailable, match=r"(?i)authoriz"):
        await Client.connect(Options(url=plain_url, first_connect_within=2))
    printed = BakerProcess("nats-url", "reader", env=env)
    assert printed.wait() == 0
    url = printed.lines[-1].strip()
    conn = await Client.connect(Options(url=url, name="test-reader"))
    await conn.close()
    passwords = embedded.passwords(data)
    assert passwords is not None and url.startswith("nats://reader:")
    server_log = (data / "nats" / "nats-server.log").read_text()
    for password in passwords.values():
        assert password not in server_log
        assert not any(password in line for line in printed.lines[:-1])


def test_a_killed_up_takes_its_nats_server_with_it(tmp_path: Path) -> None:
    system = start(tmp_path / "data")
    pid = nats_pid(system.proc)
    system.proc.stop(signal.SIGKILL)
    assert wait_gone(pid)


def test_sigint_stops_everything_cleanly(tmp_path: Path) -> None:
    system = start(tmp_path / "data")
    pid = nats_pid(system.proc)
    assert system.proc.stop(signal.SIGINT, timeout=60) == 0
    assert any("baker up: stopping" in line for line in system.proc.lines)
    assert wait_gone(pid)


def test_baker_help_lists_the_commands() -> None:
    proc = BakerProcess("--help")
    proc.wait_for("lifecycle")
    assert proc.wait() == 0
    for command in ("up", "dispatch", "jobs", "history", "tail", "rebuild", "verify", "health"):
        assert any(f"    {command} " in line for line in proc.lines), command
