"""`baker up` as root (its workers in its own process) confines command jobs: they run as
nobody, root's files stay closed, and curl's file URL is refused by a named rule."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import BakerProcess
from tests.e2e.system import System, running_with

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the command sandbox drops root's privileges: run as root"
)


def dispatch(system: System, command: str) -> tuple[int, str]:
    """The exit code of `baker dispatch --wait` and the job's stdout or error, from the API."""
    proc = BakerProcess("dispatch", "command", command, "--wait", env=system.env())
    code = proc.wait()
    found = re.search(r"dispatched (job-\S+?);", proc.lines[0])
    assert found, proc.lines
    job = httpx.get(f"{system.url}/api/jobs/{found.group(1)}", headers=system.headers).json()
    return code, str(job.get("error") or job["result"]["stdout"])


def test_baker_up_runs_command_jobs_as_nobody_and_refuses_a_file_url(tmp_path: Path) -> None:
    env = {"BAKER_ALLOWED_COMMANDS": "id,cat,curl"}
    with running_with(tmp_path / "data", env, workers=1) as system:
        who = dispatch(system, "id -u")
        shadow = dispatch(system, "cat /etc/shadow")
        curl = dispatch(system, "curl -s file:///etc/shadow")
        log = "\n".join(system.proc.lines)
    assert who == (0, f"{pwd.getpwnam('nobody').pw_uid}\n")
    assert shadow == (1, "command exited with code 1: cat: /etc/shadow: Permission denied")
    assert curl == (1, "command rejected: curl fetches only http:// and https:// URLs; "
                    "got 'file:///etc/shadow' (rule curl.url-scheme)")  # fmt: skip
    assert "command children run as uid" in log
