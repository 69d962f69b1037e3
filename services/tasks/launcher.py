"""Task launchers: answer `baker.tasks.launch` (queue group `launchers`), the runners'
`baker.tasks.instructions.<taskId>` requests and `baker.tasks.cancel.<taskId>` (every launcher
hears it; the one running the task stops it and answers).

`LocalLauncher` runs the runner as a sandboxed subprocess: no shell, its own session, a private
temp working directory (mode 0700, also its HOME and TMPDIR), a minimal environment, `prlimit`
limits and `setpriv` (no new privileges, killed with the launcher) when installed, and SIGKILL
of its whole process tree at the deadline plus a grace, or on cancel. A launcher running as
root never runs a runner as root: it drops it to `nobody` (no groups, no capabilities) unless
`run_as` names another uid, and refuses to launch when it cannot drop. The Kubernetes
launcher is in `services.tasks.kubernetes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from adapters.clock import SYSTEM_CLOCK
from domain.tasks import (
    LAUNCH_SUBJECT,
    LAUNCHER_QUEUE,
    LaunchReply,
    LaunchRequest,
    StopReply,
    decode,
)
from domain.wire import WireError
from services.ports.bus import Bus, Message, respond
from services.ports.clock import Clock, within
from services.tasks.control import CANCEL_PREFIX

log = logging.getLogger("baker.tasks.launcher")
_ROOT = Path(__file__).resolve().parents[2]  # where `services` lives, for the default runner
NOBODY = 65534  # Debian's `nobody`/`nogroup`, when the user database does not say


class BaseLauncher:
    """What every launcher shares: the three subscriptions and the instructions it holds.

    Instructions are kept until the task's deadline plus the grace and 5 s (a runner asks for
    them once, at its start); older ones are dropped whenever a launch or a question comes.
    """

    name = "launcher"

    def __init__(self, bus: Bus, *, grace: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self._bus = bus
        self.grace = grace
        self.clock = clock
        self.instructions: dict[str, LaunchRequest] = {}
        self.launched = 0
        self.refused = 0
        self.cancelled = 0
        self.heartbeat_every = 30.0  # `baker launcher`'s health heartbeat (set by the wiring)
        self.ready = asyncio.Event()  # set once every subscription is in place

    @property
    def bus(self) -> Bus:
        return self._bus

    async def run(self, stop: asyncio.Event) -> None:
        """Answer launch, instruction and cancel requests until `stop` is set."""
        subs = [
            await self._bus.subscribe(LAUNCH_SUBJECT, self._on_launch, queue=LAUNCHER_QUEUE),
            await self._bus.subscribe("baker.tasks.instructions.*", self._on_instructions),
            await self._bus.subscribe(f"{CANCEL_PREFIX}.*", self._on_cancel),
        ]
        await self._bus.flush()
        self.ready.set()
        try:
            await stop.wait()
        finally:
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            await self.close()

    async def _on_launch(self, msg: Message) -> None:
        self._expire()
        try:
            request = decode(LaunchRequest, msg.data)
        except WireError as exc:
            await respond(self._bus, msg, self._refuse(f"bad launch request: {exc}").encode())
            return
        self.instructions[request.task_id] = request  # before the runner can ask for them
        try:
            reply = await self.start(request)
        except Exception as exc:
            log.exception("launching task %s failed", request.task_id)
            reply = self._refuse(f"{type(exc).__name__}: {exc}")
        if reply.ok:
            self.launched += 1
        else:
            self.instructions.pop(request.task_id, None)
        await respond(self._bus, msg, reply.encode())

    async def _on_instructions(self, msg: Message) -> None:
        self._expire()
        request = self.instructions.get(msg.subject.rsplit(".", 1)[-1])
        if request is not None:  # other launchers' tasks: stay silent
            await respond(self._bus, msg, request.encode())

    def _expire(self) -> None:
        now = self.clock.wall()
        for task_id, request in list(self.instructions.items()):
            if (request.deadline_at - now).total_seconds() + self.grace + 5.0 < 0:
                del self.instructions[task_id]

    def _seconds_until(self, moment: datetime) -> float:
        return (moment - self.clock.wall()).total_seconds()

    async def _on_cancel(self, msg: Message) -> None:
        task_id = msg.subject.rsplit(".", 1)[-1]
        self.instructions.pop(task_id, None)  # a runner that has not asked yet gets nothing
        try:
            detail = await self.stop(task_id)
        except Exception as exc:
            log.exception("stopping task %s failed", task_id, extra={"task_id": task_id})
            reply = StopReply(ok=False, launcher=self.name, error=f"{type(exc).__name__}: {exc}")
        else:
            if detail is None:
                return  # not one of ours: the launcher running it answers
            self.cancelled += 1
            log.info("task %s cancelled: %s", task_id, detail, extra={"task_id": task_id})
            reply = StopReply(ok=True, launcher=self.name, detail=detail)
        await respond(self._bus, msg, reply.encode())

    def details(self) -> dict[str, object]:
        """What the launcher's health heartbeat reports."""
        return {"launcher": self.name, "launched": self.launched, "refused": self.refused,
                "cancelled": self.cancelled}  # fmt: skip

    def _refuse(self, error: str) -> LaunchReply:
        self.refused += 1
        return LaunchReply(ok=False, launcher=self.name, error=error)

    async def start(self, request: LaunchRequest) -> LaunchReply:
        raise NotImplementedError

    async def stop(self, task_id: str) -> str | None:
        """Stop the task's runner: what was done, or None when this launcher does not run it."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the launcher holds."""


@dataclass(frozen=True)
class LocalSettings:
    grace: float = 2.0
    max_tasks: int = 16
    allowed_commands: str | None = None  # BAKER_ALLOWED_COMMANDS for the runner
    anthropic_api_key: str | None = None  # given to `agent` runners only
    anthropic_base_url: str | None = None
    default_model: str | None = None
    open_files: int = 256
    address_space: int = 2 << 30
    file_size: int = 256 << 20
    # uid for the runner (its gid from the user database). None: `nobody` when the launcher
    # runs as root, else the launcher's own (unprivileged) user.
    run_as: int | None = None


class LocalLauncher(BaseLauncher):
    name = "local"

    def __init__(
        self,
        bus: Bus,
        *,
        nats_url: str,
        runner_cmd: list[str] | None = None,
        workdir: Path | None = None,
        settings: LocalSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings or LocalSettings()
        super().__init__(bus, grace=self.settings.grace, clock=clock)
        self.nats_url = nats_url
        self.runner_cmd = runner_cmd or [sys.executable, "-m", "services.tasks.runner"]
        self._default_runner = runner_cmd is None
        self.workdir = workdir
        self.user = sandbox_user(self.settings.run_as)  # (uid, gid) to switch to, or None
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._supervisors: set[asyncio.Task[None]] = set()

    async def start(self, request: LaunchRequest) -> LaunchReply:
        if len(self.processes) >= self.settings.max_tasks:
            return self._refuse(f"at capacity ({self.settings.max_tasks} tasks running)")
        if (problem := self._cannot_switch()) is not None:
            return self._refuse(problem)
        workdir = Path(tempfile.mkdtemp(prefix=f"baker-{request.task_id}-", dir=self.workdir))
        if self.user is not None:
            os.chown(workdir, *self.user)  # mkdtemp made it 0700: private to the runner
        try:
            with (workdir / "runner.log").open("wb") as out:
                proc = await asyncio.create_subprocess_exec(
                    *self._sandboxed(request),
                    cwd=workdir,
                    env=self._env(request, workdir),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            return self._refuse(f"could not start the task runner: {exc}")
        self.processes[request.task_id] = proc
        supervisor = asyncio.create_task(self._supervise(request, proc, workdir))
        self._supervisors.add(supervisor)
        supervisor.add_done_callback(self._supervisors.discard)
        return LaunchReply(ok=True, launcher=self.name, runner_id=f"local-{proc.pid}")

    def _cannot_switch(self) -> str | None:
        """Why the runner could not run as its sandbox user (None when it can)."""
        if self.user is None:
            return None
        uid = self.user[0]
        if not shutil.which("setpriv"):
            return f"running the task runner as uid {uid} needs `setpriv` (util-linux)"
        if self._default_runner and uid != os.geteuid() and (shut := _closed_dir(_ROOT)):
            return f"the task runner's code is not readable by uid {uid}: {shut} is closed"
        return None

    async def stop(self, task_id: str) -> str | None:
        """Kill the runner's whole process tree (its supervisor then cleans up)."""
        proc = self.processes.get(task_id)
        if proc is None:
            return None
        await kill_tree(proc)
        return f"runner local-{proc.pid} killed"

    def _sandboxed(self, request: LaunchRequest) -> list[str]:
        """The runner's argv behind `prlimit` and `setpriv` (no new privileges, dies with us,
        optionally another user); each execs the next, so the runner keeps the pid."""
        prefix: list[str] = []
        if prlimit := shutil.which("prlimit"):
            s = self.settings
            cpu = int(request.timeout_seconds + self.grace) + 1
            prefix += [
                prlimit, f"--nofile={s.open_files}", f"--as={s.address_space}",
                f"--fsize={s.file_size}", "--core=0", f"--cpu={cpu}", "--",
            ]  # fmt: skip
        if setpriv := shutil.which("setpriv"):
            prefix += [setpriv, "--no-new-privs", "--pdeathsig", "KILL"]
            if self.user is not None:
                uid, gid = self.user
                prefix += [f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
                if os.geteuid() == 0:  # only root may empty the bounding set
                    prefix += ["--inh-caps=-all", "--bounding-set=-all"]
        return [*prefix, *self.runner_cmd]

    def _env(self, request: LaunchRequest, workdir: Path) -> dict[str, str]:
        """PATH, NATS_URL, TASK_ID and a private HOME/TMPDIR; API keys for agents only."""
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "NATS_URL": self.nats_url,
            "TASK_ID": request.task_id,
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
        }
        if self._default_runner:
            env["PYTHONPATH"] = str(_ROOT)
        s = self.settings
        optional = {"BAKER_ALLOWED_COMMANDS": s.allowed_commands}
        if request.mode == "agent":
            optional |= {
                "ANTHROPIC_API_KEY": s.anthropic_api_key,
                "ANTHROPIC_BASE_URL": s.anthropic_base_url,
                "BAKER_DEFAULT_MODEL": s.default_model,
            }
        return env | {key: value for key, value in optional.items() if value}

    async def _supervise(
        self, request: LaunchRequest, proc: asyncio.subprocess.Process, workdir: Path
    ) -> None:
        """Wait for the runner; at the deadline plus the grace (on the clock), kill its whole
        tree."""
        ended = asyncio.ensure_future(proc.wait())
        try:
            budget = max(self._seconds_until(request.deadline_at), 0) + self.grace
            if await within(self.clock, budget, ended):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind in its group
            else:
                log.warning(
                    "task %s: runner still running at its deadline: killed", request.task_id
                )
                await kill_tree(proc)
        except asyncio.CancelledError:
            await kill_tree(proc)
            raise
        finally:
            self.processes.pop(request.task_id, None)
            _clean_up(request.task_id, proc.returncode, workdir)

    async def close(self) -> None:
        """Kill every runner still going (they are our children)."""
        for task in list(self._supervisors):
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)


def sandbox_user(run_as: int | None) -> tuple[int, int] | None:
    """(uid, gid) the local runner runs as, or None to keep the launcher's own user."""
    if run_as is None:
        if os.geteuid() != 0:
            return None  # an unprivileged launcher: its runner is unprivileged too
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            return NOBODY, NOBODY
        return nobody.pw_uid, nobody.pw_gid
    try:
        return run_as, pwd.getpwuid(run_as).pw_gid
    except KeyError:
        return run_as, run_as


def _closed_dir(path: Path) -> Path | None:
    """`path` if others may not list and enter it, else the first parent they may not enter."""
    for candidate, needs in ((path, 0o005), *((parent, 0o001) for parent in path.parents)):
        try:
            mode = candidate.stat().st_mode
        except OSError:
            return candidate
        if mode & needs != needs:
            return candidate
    return None


def _clean_up(task_id: str, code: int | None, workdir: Path) -> None:
    """Log the end of a runner that failed (with its output's tail); remove its directory."""
    if code not in (0, None):
        with contextlib.suppress(OSError):
            tail = (workdir / "runner.log").read_bytes()[-2000:].decode(errors="replace")
            log.warning("task %s: runner exited with %s: %s", task_id, code, tail)
    shutil.rmtree(workdir, ignore_errors=True)


async def kill_tree(proc: asyncio.subprocess.Process) -> None:
    """Freeze the runner's process group, find every descendant (also those in sessions of
    their own, like a command's child), SIGKILL them all and reap the runner."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGSTOP)
    for pid in [proc.pid, *_descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # a group leader: its whole group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    await asyncio.shield(proc.wait())


def _descendants(root: int) -> list[int]:
    """Pids below `root` in the process tree, from /proc (empty where there is none)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
