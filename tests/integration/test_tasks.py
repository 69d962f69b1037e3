"""Task pods end to end: a real nats-server, the JetStream event store, `TaskService` and
`LocalLauncher` in this process, and the runner as a real subprocess.

The service and the launcher share a fake clock: a deadline passes when a test moves the clock
(`Harness.past`), never by waiting. Runners are real processes on real time; the deadline
logic alone is unit-tested in `tests/unit/test_task_deadlines.py`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from adapters.eventstore import History
from adapters.nats.bus import NatsBus
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.deliveries import JetStreamDeliveries
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import TASKS_CONSUMER, TASKS_STREAM
from services.executor import CommandExecutor
from services.tasks import launcher as launcher_module
from services.tasks import service as service_module
from services.tasks.launcher import LocalLauncher, LocalSettings, _descendants
from services.tasks.service import TaskService
from tests.fakes.anthropic_server import FakeAnthropic, text_message, tool_use
from tests.fakes.clock import FakeClock
from tests.polling import until

SCRIPT = {"mode": "script", "timeoutSeconds": 60}
# Written to a side file and renamed into place: a test that sees the file sees all of it.
DUMP = (
    "import json, os, resource, sys; path = sys.argv[1] + '/' + os.environ['TASK_ID']; "
    "part = open(path + '.part', 'w'); part.write(json.dumps({'env': dict(os.environ),"
    " 'cwd': os.getcwd(),"
    " 'nofile': resource.getrlimit(resource.RLIMIT_NOFILE)[0], 'uid': os.getuid(),"
    " 'euid': os.geteuid(), 'gid': os.getgid(), 'groups': os.getgroups(),"
    " 'cwd_stat': [os.stat('.').st_uid, oct(os.stat('.').st_mode & 0o777)],"
    " 'caps': [line.split()[1] for line in open('/proc/self/status')"
    " if line.startswith('CapEff')][0]})); part.close(); os.replace(path + '.part', path)"
)


@dataclass
class Harness:
    server: NatsServerProcess
    nc: Client
    raw: NATS  # plain nats-py beside it, to publish and look with
    store: JetStreamEventStore
    workdir: Path
    dumps: Path  # world-writable: runners (possibly `nobody`) write what they saw here
    clock: FakeClock = field(default_factory=FakeClock)
    running: list[tuple[asyncio.Event, asyncio.Task[Any]]] = field(default_factory=list)
    conns: list[Client] = field(default_factory=list)

    def service(self, store: JetStreamEventStore | None = None, **options: Any) -> TaskService:
        return TaskService(
            NatsBus(self.nc), CommandExecutor(store or self.store),
            JetStreamDeliveries(self.nc, TASKS_STREAM, TASKS_CONSUMER), clock=self.clock,
            **{"launch_timeout": 2.0, "check_every": 1.0, **options},
        )  # fmt: skip

    async def meanwhile(self, work: Awaitable[Any]) -> Any:
        """Await `work` while moving the clock on 0.1 s at a time (it waits on the clock)."""
        task = asyncio.ensure_future(work)

        async def done() -> bool:
            if not task.done():
                await self.clock.advance(0.1)
            return task.done()

        await until(done, "the work waiting on the clock")
        return task.result()

    async def past(self, service: TaskService, seconds: int) -> None:
        """Move the clock `seconds` on, one watchdog round (1 s) at a time, each round done."""
        for _ in range(seconds):
            await self._round(service, service.stats.checks + 1)

    async def _round(self, service: TaskService, number: int) -> None:
        await self.clock.advance(1.0)
        await until(lambda: service.stats.checks >= number, f"deadline round {number}")

    def start(self, run: Callable[[asyncio.Event], Any]) -> asyncio.Event:
        stop = asyncio.Event()
        self.running.append((stop, asyncio.create_task(run(stop))))
        return stop

    async def launcher(self, **settings: Any) -> LocalLauncher:
        conn = await Client.connect(Options(url=self.server.url, name="test-launcher"))
        self.conns.append(conn)
        runner_cmd = settings.pop("runner_cmd", None)
        base: dict[str, Any] = {"allowed_commands": "echo,sleep", "grace": 0.5}
        launcher = LocalLauncher(
            NatsBus(conn),
            nats_url=self.server.url,
            runner_cmd=runner_cmd,
            workdir=self.workdir,
            settings=LocalSettings(**{**base, **settings}),
            clock=self.clock,
        )
        self.start(launcher.run)
        await asyncio.wait_for(launcher.ready.wait(), 5)
        return launcher


@pytest.fixture
async def h(
    nats_server: NatsServerProcess, provisioned: Client, raw_nc: NATS
) -> AsyncIterator[Harness]:
    store = JetStreamEventStore(provisioned)
    # Not under tmp_path (0700 when root): a runner dropped to `nobody` must reach its dirs.
    base = _shared_dirs(Path(tempfile.mkdtemp(prefix="baker-test-tasks-")))
    harness = Harness(nats_server, provisioned, raw_nc, store, base / "runs", base / "dumps")
    try:
        yield harness
    finally:
        for stop, _ in harness.running:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*(t for _, t in harness.running)), 30)
        for conn in harness.conns:
            await conn.close()
        await store.close()
        shutil.rmtree(base, ignore_errors=True)


async def wait_task(
    store: JetStreamEventStore, task_id: str, until_: set[str], timeout: float = 20.0
) -> History:
    async def reached() -> History | None:
        history = await store.load("task", task_id)
        return history if history.state.status in until_ else None

    try:
        result: History = await until(reached, f"{task_id} in {until_}", timeout=timeout)
    except AssertionError:
        history = await store.load("task", task_id)
        raise AssertionError(f"{task_id} never reached {until_}: {types(history)}") from None
    return result


def types(history: History) -> list[str]:
    return [e.envelope.type for e in history.events]


def gone(pid: int) -> bool:
    """The process no longer runs (missing, or a zombie awaiting its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def test_a_script_task_runs_to_completion(h: Harness) -> None:
    launcher = await h.launcher()
    service = h.service()
    h.start(service.run)
    status, body = await service.launch({"goal": "echo hello-task", **SCRIPT})
    assert (status, body["status"]) == (202, "launched")
    history = await wait_task(h.store, body["id"], {"completed"})
    assert types(history) == ["TaskLaunched", "TaskStarted", "TaskCompleted"]
    launched, started, completed = (e.envelope.data for e in history.events)
    assert launched.launcher == "local" and launched.mode == "script"
    assert launched.deadline_at is not None and launched.timeout_seconds == 60
    assert started.runner_id
    assert completed.result["stdout"] == "hello-task\n" and completed.result["exitCode"] == 0
    assert history.events[0].envelope.trace_id  # the launch span's trace
    await until(lambda: not launcher.processes and not any(h.workdir.iterdir()), "cleaned up")
    assert service.stats.processed == 2 and service.stats.malformed == 0
    assert service.stats.watching == 0


async def test_a_task_past_its_deadline_times_out_and_its_processes_are_gone(
    h: Harness,
) -> None:
    launcher = await h.launcher()
    service = h.service()
    h.start(service.run)
    status, body = await service.launch(
        {"goal": "sleep 30", "mode": "script", "timeoutSeconds": 60}
    )
    assert status == 202
    task_id = body["id"]
    await wait_task(h.store, task_id, {"running"})
    runner = launcher.processes[task_id].pid
    await until(lambda: _descendants(runner), "the runner's `sleep`")
    seen = set(task_processes(task_id))  # the runner and its `sleep`
    await h.past(service, 59)
    assert (await h.store.load("task", task_id)).state.status == "running"
    assert all(not gone(pid) for pid in seen)  # nothing is stopped before the deadline
    await h.past(service, 1)
    history = await wait_task(h.store, task_id, {"timed_out"})
    assert types(history)[0] == "TaskLaunched" and types(history)[-1] == "TaskTimedOut"
    assert history.events[-1].envelope.data.timeout_seconds == 60
    await h.clock.advance(0.5)  # the launcher's grace: then it kills the whole tree
    await until(lambda: not task_processes(task_id), "processes gone")
    # A process that is exiting no longer shows its environment but is not gone yet either.
    await until(lambda: all(gone(pid) for pid in seen), "every pid gone")
    await until(lambda: task_id not in launcher.processes, "the launcher forgot it")


def task_processes(task_id: str) -> list[int]:
    """Live processes of a task: their environment names its working directory (HOME)."""
    marker = f"baker-{task_id}-".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and not gone(int(entry)):
            with contextlib.suppress(OSError):
                if marker in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
    return found


async def test_a_runner_stopped_with_sigterm_reports_it_and_kills_its_command(
    h: Harness,
) -> None:
    launcher = await h.launcher()
    service = h.service()
    h.start(service.run)
    _, body = await service.launch({"goal": "sleep 30", **SCRIPT})
    runner = launcher.processes[body["id"]].pid
    await wait_task(h.store, body["id"], {"running"})
    sleeper = (await until(lambda: _descendants(runner), "the sleep child"))[-1]
    os.kill(runner, signal.SIGTERM)
    history = await wait_task(h.store, body["id"], {"failed"})
    assert "terminated (SIGTERM)" in history.events[-1].envelope.data.error
    await until(lambda: gone(runner) and gone(sleeper), "the runner and its child gone")


async def test_a_runner_that_ignores_its_deadline_is_killed(h: Harness) -> None:
    launcher = await h.launcher(runner_cmd=["sleep", "30"])  # never speaks, never ends
    service = h.service()
    h.start(service.run)
    _, body = await service.launch({"goal": "anything", "mode": "script", "timeoutSeconds": 5})
    pid = launcher.processes[body["id"]].pid
    await h.past(service, 5)
    history = await wait_task(h.store, body["id"], {"timed_out"})
    assert types(history) == ["TaskLaunched", "TaskTimedOut"]
    assert not gone(pid)  # the grace is not over
    await h.clock.advance(0.5)
    await until(lambda: gone(pid) and not launcher.processes, "the runner killed")
    assert service.stats.timed_out == 1


async def test_a_runner_that_vanishes_silently_times_out_and_ran_sandboxed(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAKER_TEST_SECRET", "s3cret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "parent-key")
    dumps = h.dumps
    launcher = await h.launcher(
        runner_cmd=[sys.executable, "-c", DUMP, str(dumps)], anthropic_api_key="agent-key"
    )
    service = h.service()
    h.start(service.run)
    _, script = await service.launch({"goal": "echo hi", "mode": "script", "timeoutSeconds": 1})
    _, agent = await service.launch({"goal": "say hi", "mode": "agent", "timeoutSeconds": 1})
    await until(lambda: not launcher.processes, "both runners ended")
    await h.past(service, 1)
    for task in (script, agent):
        history = await wait_task(h.store, task["id"], {"timed_out"})
        assert types(history) == ["TaskLaunched", "TaskTimedOut"]
    seen = {tid: json.loads((dumps / tid).read_text()) for tid in (script["id"], agent["id"])}
    env = seen[script["id"]]["env"]
    assert {"PATH", "NATS_URL", "TASK_ID"} <= set(env)
    allowed = {"PATH", "NATS_URL", "TASK_ID", "HOME", "TMPDIR", "LANG", "LC_CTYPE"}
    assert set(env) <= allowed | {"BAKER_ALLOWED_COMMANDS"}
    assert env["TASK_ID"] == script["id"] and env["NATS_URL"] == h.server.url
    assert "ANTHROPIC_API_KEY" not in env and "BAKER_TEST_SECRET" not in env
    assert seen[agent["id"]]["env"]["ANTHROPIC_API_KEY"] == "agent-key"
    cwd = Path(seen[script["id"]]["cwd"])
    assert cwd.parent == h.workdir and cwd.name.startswith(f"baker-{script['id']}-")
    assert seen[script["id"]]["nofile"] == 256 or not _has("prlimit")
    assert not _exists(cwd)


ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)


@ROOT_ONLY
async def test_a_root_launcher_runs_its_runner_as_nobody_by_default(h: Harness) -> None:
    nobody = pwd.getpwnam("nobody")
    launcher = await h.launcher(runner_cmd=[sys.executable, "-c", DUMP, str(h.dumps)])
    assert launcher.settings.run_as is None  # nothing configured: the safe default applies
    service = h.service()
    h.start(service.run)
    _, body = await service.launch({"goal": "echo hi", "mode": "script", "timeoutSeconds": 2})
    await until((h.dumps / body["id"]).exists, "the runner's report")
    seen = json.loads((h.dumps / body["id"]).read_text())
    assert (seen["uid"], seen["euid"], seen["gid"]) == (nobody.pw_uid,) * 2 + (nobody.pw_gid,)
    assert seen["groups"] == [] and int(seen["caps"], 16) == 0  # no root group, no capability
    assert seen["cwd_stat"] == [nobody.pw_uid, "0o700"]  # a private working directory
    assert Path(seen["cwd"]).parent == h.workdir
    assert seen["env"]["HOME"] == seen["cwd"] == seen["env"]["TMPDIR"]


@ROOT_ONLY
async def test_a_root_launcher_refuses_a_runner_its_sandbox_user_cannot_read(
    h: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    closed = _closed_code_dir(tmp_path)
    monkeypatch.setattr(launcher_module, "_ROOT", closed / "code")
    await h.launcher()
    service = h.service()
    status, body = await service.launch({"goal": "echo x", **SCRIPT})
    assert status == 503 and "is not readable by uid" in body["error"], body
    assert f"{closed} is closed" in body["error"]
    history = await wait_task(h.store, body["id"], {"failed"})  # refused, never run as root
    assert types(history) == ["TaskLaunched", "TaskFailed"]


@ROOT_ONLY
async def test_the_runner_can_run_as_another_unprivileged_user(h: Harness) -> None:
    launcher = await h.launcher(runner_cmd=[sys.executable, "-c", DUMP, str(h.dumps)], run_as=12345)
    service = h.service()
    h.start(service.run)
    _, body = await service.launch({"goal": "echo hi", "mode": "script", "timeoutSeconds": 1})
    await until(lambda: not launcher.processes, "the runner ended")
    assert json.loads((h.dumps / body["id"]).read_text())["uid"] == 12345


@ROOT_ONLY
async def test_the_default_runner_works_as_nobody(h: Harness) -> None:
    """The real runner (not a stand-in) starts, reports and finishes as `nobody`."""
    launcher = await h.launcher()
    assert launcher.user == (pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
    service = h.service()
    h.start(service.run)
    _, body = await service.launch({"goal": "echo as-nobody", **SCRIPT})
    history = await wait_task(h.store, body["id"], {"completed"})
    assert history.events[-1].envelope.data.result["stdout"] == "as-nobody\n"


def _closed_code_dir(base: Path) -> Path:
    """`base/closed` (mode 0700) holding a world-readable `code` directory."""
    closed = base / "closed"
    (closed / "code").mkdir(parents=True)
    (closed / "code").chmod(0o755)
    closed.chmod(0o700)
    return closed


def _shared_dirs(base: Path) -> Path:
    """`runs` (the launcher's workdir) and a world-writable `dumps` under `base`."""
    base.chmod(0o755)
    (base / "runs").mkdir(mode=0o755)
    (base / "dumps").mkdir()
    (base / "dumps").chmod(0o777)
    return base


def _exists(path: Path) -> bool:
    return path.exists()


def _has(binary: str) -> bool:
    return any(Path(d, binary).exists() for d in os.environ.get("PATH", "").split(":"))


async def test_no_launcher_or_a_refusal_fails_the_task_with_503(h: Harness) -> None:
    service = h.service()
    h.start(service.run)
    # It retries "no responders" for a second on its clock (a launcher may be starting).
    status, body = await h.meanwhile(service.launch({"goal": "echo x", **SCRIPT}))
    assert status == 503 and "no task launcher" in body["error"]
    history = await wait_task(h.store, body["id"], {"failed"})
    assert types(history) == ["TaskLaunched", "TaskFailed"]
    assert history.events[0].envelope.data.launcher == "none"
    assert "no task launcher" in history.events[1].envelope.data.error

    await h.launcher(max_tasks=0)
    status, body = await service.launch({"goal": "echo x", **SCRIPT})
    assert status == 503 and "at capacity" in body["error"]
    history = await wait_task(h.store, body["id"], {"failed"})
    assert history.events[0].envelope.data.launcher == "local"
    assert service.stats.launch_failed == 2 and service.stats.watching == 0


async def test_bad_requests_are_400_and_launch_nothing(h: Harness) -> None:
    service = h.service()
    for body, field_name in [
        ({"mode": "script"}, "goal"),
        ({"goal": "x", "mode": "shell"}, "mode"),
        ({"goal": "x", "mode": "script", "timeoutSeconds": 1801}, "timeoutSeconds"),
        ({"goal": "x", "mode": "agent", "toolbox": "a b"}, "toolbox"),
    ]:
        status, answer = await service.launch(body)
        assert status == 400 and answer["error"].startswith(f"{field_name}: ")
    assert await h.store.head_seq() == 0


async def test_malformed_and_unknown_messages_are_terminated_and_counted(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "UNKNOWN_AFTER", 2)
    await h.launcher()
    service = h.service()
    h.start(service.run)
    js = h.raw.jetstream()
    for subject, data in [
        ("baker.tasks.status.task-x", b"not json"),
        ("baker.tasks.status.task-x", b'{"taskId": "task-x", "status": "bogus"}'),
        ("baker.tasks.status.task-x", b'{"taskId": "task-y", "status": "running"}'),
        (
            "baker.tasks.result.task-x",
            b'{"taskId": "task-x", "status": "completed", "durationMs": -1}',
        ),
        ("baker.tasks.status.task-x", b'{"taskId": "task-x", "status": "running"}'),  # unknown
    ]:
        await js.publish(subject, data)
    _, body = await service.launch({"goal": "echo still-flowing", **SCRIPT})
    await wait_task(h.store, body["id"], {"completed"})  # not blocked by the bad ones
    await until(lambda: service.stats.malformed == 4 and service.stats.unknown == 1, "counted")
    await h.nc.flush()  # the service's acks have reached the server
    info = await h.raw.jsm().consumer_info(TASKS_STREAM, TASKS_CONSUMER)
    assert info.num_ack_pending == 0 and info.num_pending == 0
    assert not (await h.store.load("task", "task-x")).exists


async def test_a_restarted_service_restores_and_times_out_an_unfinished_task(
    h: Harness,
) -> None:
    await h.launcher(runner_cmd=["true"])  # exits at once without a word
    first = h.service()
    stop_first = h.start(first.run)
    first_task = h.running[-1][1]
    _, body = await first.launch({"goal": "echo x", "mode": "script", "timeoutSeconds": 4})
    stop_first.set()
    await until(first_task.done, "the first service stopped")
    assert (await h.store.load("task", body["id"])).state.status == "launched"

    second = h.service(store=JetStreamEventStore(h.nc))
    h.start(second.run)
    await until(lambda: second.stats.watching == 1, "the unfinished task restored")
    await h.past(second, 3)
    assert (await h.store.load("task", body["id"])).state.status == "launched"
    await h.past(second, 1)  # its recorded deadline
    history = await wait_task(h.store, body["id"], {"timed_out"})
    assert types(history) == ["TaskLaunched", "TaskTimedOut"]
    assert second.stats.timed_out == 1 and first.stats.timed_out == 0


async def test_an_agent_task_reports_each_iteration(h: Harness) -> None:
    replies = [tool_use("command", {"command": "echo from-tool"}), text_message("hi there")]
    with FakeAnthropic(replies) as api:
        await h.launcher(anthropic_api_key="test-key", anthropic_base_url=api.base_url)
        service = h.service()
        h.start(service.run)
        status, body = await service.launch({"goal": "Say hi", "mode": "agent"})
        assert status == 202
        history = await wait_task(h.store, body["id"], {"completed"}, timeout=30)
        sent = api.headers[0].get("x-api-key") or api.headers[0]["authorization"]
        assert sent.endswith("test-key")
    assert types(history) == [
        "TaskLaunched", "TaskStarted", "TaskProgressed", "TaskProgressed", "TaskCompleted"
    ]  # fmt: skip
    progress = [e.envelope.data for e in history.events[2:4]]
    assert [p.kind for p in progress] == ["tool_call", "milestone"]
    assert progress[0].message.startswith("iteration 1/")
    result = history.events[-1].envelope.data.result
    assert result["text"] == "hi there" and result["toolCalls"][0]["ok"] is True


async def test_the_runner_refuses_to_start_without_its_environment(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.tasks.runner",
        env={"PATH": os.environ.get("PATH", ""), "TASK_ID": "bad id"},
        stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"NATS_URL and TASK_ID" in err
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
