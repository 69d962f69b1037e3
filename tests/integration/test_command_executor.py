"""The `command` executor with real subprocesses: output, exit codes, limits, killing."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.executors import command
from adapters.executors.base import Execution
from adapters.executors.command import run_command
from domain.command_policy import DEFAULT_ALLOWED_COMMANDS, MAX_OUTPUT_BYTES
from domain.specs import CommandPayload

TOOLS = ("env", "sh", "sleep", "cat", "echo", "ls", "printf", "head")


@pytest.fixture(autouse=True, params=["posix_spawn", "asyncio"])
def spawn_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both ways of starting a child: they must behave the same."""
    if request.param == "posix_spawn" and not command.USE_POSIX_SPAWN:
        pytest.skip("posix_spawn with pidfd is not available here")
    monkeypatch.setattr(command, "USE_POSIX_SPAWN", request.param == "posix_spawn")
    return str(request.param)


async def run(
    command: str,
    allowed: tuple[str, ...] = TOOLS,
    timeout: float | None = None,
    max_output: int = MAX_OUTPUT_BYTES,
    on_start: Callable[[int], None] | None = None,
) -> Execution:
    return await run_command(
        CommandPayload(command=command),
        allowed=allowed,
        timeout=timeout,
        max_output=max_output,
        on_start=on_start,
    )


def state(pid: int) -> str | None:
    """The process's state letter from /proc, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    # A zombie is dead: here nothing may reap orphans (pid 1 is not an init).
    return state(pid) not in (None, "Z")


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `predicate` until it holds: a SIGKILL is delivered asynchronously by the kernel."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class PidCatcher:
    """An `on_start` hook that learns the child's pid."""

    def __init__(self) -> None:
        self.pid = 0
        self.started = asyncio.Event()

    def __call__(self, pid: int) -> None:
        self.pid = pid
        self.started.set()


async def test_echo_runs_and_reports_its_output() -> None:
    execution = await run("echo hi", allowed=DEFAULT_ALLOWED_COMMANDS)
    assert execution.ok
    assert execution.error is None
    result = execution.result
    assert result["exitCode"] == 0
    assert result["stdout"] == "hi\n"
    assert result["stderr"] == ""
    assert result["truncated"] is False
    assert result["timedOut"] is False
    assert isinstance(result["durationMs"], int)


async def test_a_non_zero_exit_is_a_failure_naming_the_code() -> None:
    execution = await run("ls /nonexistent-baker-path", allowed=DEFAULT_ALLOWED_COMMANDS)
    assert not execution.ok
    assert execution.result["exitCode"] == 2
    assert "nonexistent-baker-path" in execution.result["stderr"]
    assert execution.error is not None
    assert execution.error.startswith("command exited with code 2: ")


async def test_a_binary_outside_the_allowlist_is_rejected_without_running() -> None:
    execution = await run("rm -rf /tmp/never", allowed=DEFAULT_ALLOWED_COMMANDS)
    assert execution == Execution(
        ok=False, error="command rejected: 'rm' is not in the allowed commands list"
    )


async def test_shell_syntax_reaches_echo_as_literal_arguments(tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    command = f"echo '$(whoami)' ; rm -rf {tmp_path} && touch {marker} | cat `id`"
    execution = await run(command, allowed=DEFAULT_ALLOWED_COMMANDS)
    assert execution.ok
    assert execution.result["stdout"] == (
        f"$(whoami) ; rm -rf {tmp_path} && touch {marker} | cat `id`\n"
    )
    assert sorted(os.listdir(tmp_path)) == []  # nothing removed the dir, nothing touched the marker


async def test_env_assignments_reach_the_child_and_the_worker_env_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BAKER_TEST_SECRET", "leaked")
    execution = await run("GREETING='hello there' env")
    assert execution.ok
    lines = execution.result["stdout"].splitlines()
    assert "GREETING=hello there" in lines
    assert f"PATH={os.environ['PATH']}" in lines
    assert not [line for line in lines if line.startswith("BAKER_TEST_SECRET=")]


async def test_a_blocked_env_key_is_rejected() -> None:
    execution = await run("LD_PRELOAD=/tmp/x.so env")
    assert execution.error == "command rejected: cannot override env var 'LD_PRELOAD'"


async def test_an_allowed_binary_that_is_not_installed_is_a_clear_failure() -> None:
    execution = await run("baker-no-such-tool --help", allowed=("baker-no-such-tool",))
    assert execution == Execution(
        ok=False, error="command failed: 'baker-no-such-tool' is not installed on this worker"
    )


async def test_the_time_limit_kills_the_command() -> None:
    catcher = PidCatcher()
    started = time.monotonic()
    execution = await run("sleep 30", allowed=("sleep",), timeout=0.5, on_start=catcher)
    assert time.monotonic() - started < 5
    assert not execution.ok
    assert execution.error == "command timed out after 0.5 s"
    assert execution.result["timedOut"] is True
    assert execution.result["exitCode"] == -9
    assert not alive(catcher.pid)
    assert wait_until(lambda: not group_members(catcher.pid))


async def test_the_time_limit_kills_the_whole_process_group() -> None:
    catcher = PidCatcher()
    execution = await run(
        "sh -c 'sleep 30 & echo started; wait'", allowed=("sh",), timeout=0.5, on_start=catcher
    )
    assert execution.result["timedOut"] is True
    assert execution.result["stdout"] == "started\n"  # output up to the kill is kept
    assert wait_until(lambda: not group_members(catcher.pid))


async def test_cancelling_the_job_kills_the_child() -> None:
    catcher = PidCatcher()
    task = asyncio.create_task(run("sh -c 'sleep 30 & wait'", allowed=("sh",), on_start=catcher))
    await catcher.started.wait()
    assert alive(catcher.pid)
    assert wait_until(lambda: len(group_members(catcher.pid)) == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(catcher.pid)
    assert wait_until(lambda: not group_members(catcher.pid))


async def test_large_output_is_capped_and_marked() -> None:
    execution = await run("head -c 300000 /dev/zero", max_output=1000)
    assert execution.ok
    result = execution.result
    assert result["truncated"] is True
    assert result["stdout"] == "\0" * 1000 + "\n…[truncated: 299000 bytes omitted]"


async def test_ansi_codes_are_stripped_from_output() -> None:
    execution = await run(r"printf '\033[1;31mred\033[0m plain\n'")
    assert execution.result["stdout"] == "red plain\n"


async def test_stdin_is_empty_so_cat_does_not_wait() -> None:
    execution = await run("cat")
    assert execution.ok
    assert execution.result["stdout"] == ""


async def test_no_descriptor_is_left_open_after_runs_that_end_every_way() -> None:
    assert (await run("echo warm")).ok  # the first child opens the loop's one child watcher
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        assert (await run("echo hi")).ok
    assert not (await run("sh -c 'exit 3'")).ok
    assert (await run("sleep 5", timeout=0.05)).result["timedOut"]
    assert not (await run("no-such-binary-here", allowed=("no-such-binary-here",))).ok
    catcher = PidCatcher()
    task = asyncio.create_task(run("sleep 5", on_start=catcher))
    await catcher.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(os.listdir("/proc/self/fd")) == before


async def test_a_child_that_keeps_the_worker_user_still_gets_its_limits() -> None:
    """The path of a worker that is not root: no user to switch to, the limits set by the
    worker as it starts the child (read here before the child could have ended)."""
    seen: dict[str, str] = {}

    def read_limits(pid: int) -> None:
        rows = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
        seen.update((row[:26].strip(), row[26:].split()[0]) for row in rows)

    execution = await run("sleep 5", timeout=0.5, on_start=read_limits)
    assert execution.error == "command timed out after 0.5 s"
    assert seen["Max cpu time"] == "2"  # the job's time limit, rounded up, plus one
    assert seen["Max open files"] == "256"
    assert seen["Max file size"] == str(64 << 20)
    assert seen["Max core file size"] == "0"
