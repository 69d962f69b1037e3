"""Task launchers: answer `baker.tasks.launch` (queue group `launchers`) and the runners'
`baker.tasks.instructions.<taskId>` requests.

`LocalLauncher` runs the runner as a sandboxed subprocess: no shell, its own session, a fresh
temp working directory, a minimal environment, `setpriv`/`prlimit` limits when installed, and
SIGKILL of its whole process tree at the deadline plus a grace. `KubernetesLauncher` creates a
Job with the digest's security posture through the Kubernetes API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from adapters.kubernetes import KubernetesError, create_job
from domain.tasks import (
    LAUNCH_SUBJECT,
    LAUNCHER_QUEUE,
    LaunchReply,
    LaunchRequest,
    decode,
    job_manifest,
)
from domain.wire import WireError

log = logging.getLogger("baker.tasks.launcher")
_ROOT = Path(__file__).resolve().parents[2]  # where `services` lives, for the default runner


class _Launcher:
    """What every launcher shares: the two subscriptions and the instructions it holds."""

    name = "launcher"

    def __init__(self, nc: NATS, *, grace: float) -> None:
        self._nc = nc
        self.grace = grace
        self.instructions: dict[str, LaunchRequest] = {}
        self.launched = 0
        self.refused = 0
        self.ready = asyncio.Event()  # set once both subscriptions are in place

    async def run(self, stop: asyncio.Event) -> None:
        """Answer launch and instruction requests until `stop` is set."""
        subs = [
            await self._nc.subscribe(LAUNCH_SUBJECT, queue=LAUNCHER_QUEUE, cb=self._on_launch),
            await self._nc.subscribe("baker.tasks.instructions.*", cb=self._on_instructions),
        ]
        await self._nc.flush()
        self.ready.set()
        try:
            await stop.wait()
        finally:
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            await self.close()

    async def _on_launch(self, msg: Msg) -> None:
        try:
            request = decode(LaunchRequest, msg.data)
        except WireError as exc:
            await msg.respond(self._refuse(f"bad launch request: {exc}").encode())
            return
        self.instructions[request.task_id] = request  # before the runner can ask for them
        try:
            reply = await self.start(request)
        except Exception as exc:
            log.exception("launching task %s failed", request.task_id)
            reply = self._refuse(f"{type(exc).__name__}: {exc}")
        if reply.ok:
            self.launched += 1
            delay = _seconds_until(request.deadline_at) + self.grace + 5.0
            asyncio.get_running_loop().call_later(
                delay, self.instructions.pop, request.task_id, None
            )
        else:
            self.instructions.pop(request.task_id, None)
        await msg.respond(reply.encode())

    async def _on_instructions(self, msg: Msg) -> None:
        request = self.instructions.get(msg.subject.rsplit(".", 1)[-1])
        if request is not None and msg.reply:  # other launchers' tasks: stay silent
            await msg.respond(request.encode())

    def _refuse(self, error: str) -> LaunchReply:
        self.refused += 1
        return LaunchReply(ok=False, launcher=self.name, error=error)

    async def start(self, request: LaunchRequest) -> LaunchReply:
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
    run_as: int | None = None  # uid (and gid) for the runner when we may switch (root)


class LocalLauncher(_Launcher):
    name = "local"

    def __init__(
        self,
        nc: NATS,
        *,
        nats_url: str,
        runner_cmd: list[str] | None = None,
        workdir: Path | None = None,
        settings: LocalSettings | None = None,
    ) -> None:
        self.settings = settings or LocalSettings()
        super().__init__(nc, grace=self.settings.grace)
        self.nats_url = nats_url
        self.runner_cmd = runner_cmd or [sys.executable, "-m", "services.tasks.runner"]
        self._default_runner = runner_cmd is None
        self.workdir = workdir
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._supervisors: set[asyncio.Task[None]] = set()

    async def start(self, request: LaunchRequest) -> LaunchReply:
        if len(self.processes) >= self.settings.max_tasks:
            return self._refuse(f"at capacity ({self.settings.max_tasks} tasks running)")
        if self.settings.run_as is not None and not shutil.which("setpriv"):
            return self._refuse("run_as needs `setpriv` (util-linux), which is not installed")
        workdir = Path(tempfile.mkdtemp(prefix=f"baker-{request.task_id}-", dir=self.workdir))
        if self.settings.run_as is not None:
            os.chown(workdir, self.settings.run_as, self.settings.run_as)
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
            if (uid := self.settings.run_as) is not None:
                prefix += [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
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
        """Wait for the runner; at the deadline plus the grace, kill its whole tree."""
        try:
            async with asyncio.timeout(max(_seconds_until(request.deadline_at), 0) + self.grace):
                await proc.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind in its group
        except TimeoutError:
            log.warning("task %s: runner still running at its deadline: killed", request.task_id)
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


def _seconds_until(moment: datetime) -> float:
    return (moment - datetime.now(UTC)).total_seconds()


class KubernetesLauncher(_Launcher):
    """Creates one Job per task (`job_manifest`); a non-2xx answer refuses the launch."""

    name = "kubernetes"

    def __init__(
        self,
        nc: NATS,
        *,
        api_url: str,
        token: str | None,
        namespace: str,
        image: str,
        nats_url: str,
        ttl: int = 60,
        verify: bool | str = True,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(nc, grace=30.0)
        self.api_url, self.token, self.namespace = api_url, token, namespace
        self.image, self.nats_url, self.ttl = image, nats_url, ttl
        self._client = client or httpx.AsyncClient(timeout=10.0, verify=verify)
        self._own_client = client is None

    async def start(self, request: LaunchRequest) -> LaunchReply:
        manifest = job_manifest(
            request.task_id, request.request(), self.image, self.namespace, self.nats_url, self.ttl
        )
        try:
            await create_job(self.api_url, self.token, self.namespace, manifest, self._client)
        except KubernetesError as exc:
            return self._refuse(exc.message)
        return LaunchReply(ok=True, launcher=self.name, runner_id=manifest["metadata"]["name"])

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()
