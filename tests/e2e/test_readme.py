"""Every shell example in the README works exactly as printed, as a new user runs it: `make up`
(here `.venv/bin/baker up`) in the checkout, then each line of the README's `sh` blocks in
another terminal, with no BAKER_* variable set. Placeholders such as `<job-id>` take the id of
the last job an example printed. No log line (ours or a library's) is mixed into what a
command prints."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import BakerProcess

ROOT = Path(__file__).resolve().parents[2]
JOB_ID = re.compile(r"job-[0-9a-f]{16,}")
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} +[A-Z]+ |HTTP Request", re.MULTILINE)


def examples(readme: str) -> list[str]:
    """The command lines of the README's `sh` blocks, without `make` lines and comments."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL):
        for raw in block.splitlines():
            line = raw.split("  #", 1)[0].strip()
            if line and not line.startswith(("#", "make ")):
                lines.append(line)
    return lines


def test_the_readme_has_examples_to_run() -> None:
    found = examples((ROOT / "README.md").read_text())
    assert any(line.startswith("curl ") for line in found)
    assert any("baker dispatch" in line for line in found)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory that looks like the checkout after `make up`: `.venv` is this virtualenv,
    the data dir is the default `./.baker`; `baker up` runs there on the default port."""
    if not _port_free(3000):
        pytest.skip("port 3000 is taken on this machine; the README's curl example needs it")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAKER_")}
    env.update(PATH=f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin")
    up = BakerProcess("up", env=env, cwd=tmp_path)
    try:
        up.wait_for("running;", timeout=60)
        yield tmp_path, env
    finally:
        assert up.stop(signal.SIGTERM, timeout=60) == 0


def test_every_readme_example_works_as_printed(checkout: tuple[Path, dict[str, str]]) -> None:
    cwd, env = checkout
    last_job = ""
    for line in examples((ROOT / "README.md").read_text()):
        command = line.replace("<job-id>", last_job)
        assert not re.search(r"<[a-z-]+>", command), f"a placeholder with no value: {line!r}"
        done = subprocess.run(
            command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        said = f"{line!r} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        assert done.returncode == 0, said
        assert done.stdout.strip(), said
        assert not LOG_LINE.search(done.stderr), said  # notes on stderr, but no log lines
        dispatched = "baker dispatch" in line or line.startswith("curl")
        if dispatched and (ids := JOB_ID.findall(done.stdout + done.stderr)):
            last_job = ids[0]
