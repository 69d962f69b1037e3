"""Running `baker` as a child process in e2e tests."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BAKER = shutil.which("baker", path=str(Path(sys.executable).parent)) or "baker"


class BakerProcess:
    """`baker ARGS` with stdout read line by line on a thread, so tests can wait for text."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
        full_env = {**os.environ, **(env or {})}
        self.args = args
        self.proc = subprocess.Popen(
            [BAKER, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the exit; every line printed is then in `lines`. A process still running
        after `timeout` is killed, and the error carries what it printed."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
            self._drain(timeout)
            raise TimeoutError(
                f"baker {' '.join(self.args)} still ran {timeout:.0f} s later "
                "(killed); its output:\n" + "\n".join(self.lines[-200:])
            ) from None
        self._drain(timeout)
        return code

    def _drain(self, timeout: float) -> None:
        self._reader.join(timeout)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """Block until a line containing `text` is printed; fail with the output so far."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{text!r} not seen; output:\n" + "\n".join(self.lines))
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"exited before {text!r}; output:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if text in line:
                return line

    def stop(self, sig: int, timeout: float = 30.0) -> int:
        self.proc.send_signal(sig)
        return self.wait(timeout)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def started(*args: str, env: dict[str, str]) -> Iterator[BakerProcess]:
    """`baker ARGS` for the length of a `with`; SIGKILLed at its end if still running."""
    proc = BakerProcess(*args, env=env)
    try:
        yield proc
    finally:
        if proc.proc.poll() is None:
            proc.stop(signal.SIGKILL)


def port_of(proc: BakerProcess) -> int:
    """The port a daemon says it serves its API on."""
    found = re.search(r"on port (\d+)", proc.wait_for("on port", 60))
    assert found is not None
    return int(found.group(1))
