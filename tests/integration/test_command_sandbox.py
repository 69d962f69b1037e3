"""The command sandbox for real (DESIGN §12): a root worker's command children run as
nobody, with no new privileges, in a session of their own, with their limits; root's files
stay closed to them; curl is refused a file URL by a named rule.

These need root (there is no privilege to drop otherwise): elsewhere they skip, saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
from typing import Any

import pytest
from nats.aio.msg import Msg

from adapters.executors import command, sandbox
from adapters.executors.agent import run_agent
from adapters.executors.base import Execution
from adapters.executors.command import run_command
from adapters.nats.server import NatsServerProcess
from domain.command_sandbox import CommandLimits, CommandSandbox
from domain.specs import AgentPayload, CommandPayload, parse_job_spec
from tests.e2e.procs import BakerProcess
from tests.fakes.anthropic_server import FakeAnthropic, text_message, tool_use
from tests.integration.pipeline import running_pipeline
from tests.polling import until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the command sandbox drops root's privileges: run as root"
)
NOBODY = pwd.getpwnam("nobody")
ALLOWED = ("id", "whoami", "cat", "curl", "sleep", "no-such-binary")


def status(text: str) -> dict[str, str]:
    """/proc/<pid>/status as a dict of its fields."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


def limits(text: str) -> dict[str, str]:
    """/proc/<pid>/limits as {limit name: soft limit}."""
    rows = text.splitlines()[1:]
    return {row[:26].strip(): row[26:].split()[0] for row in rows}


def assert_confined(who: str, proc_status: str, proc_limits: str, timeout: int) -> None:
    assert who == f"{NOBODY.pw_uid}\n"
    fields = status(proc_status)
    assert fields["Uid"].split() == [str(NOBODY.pw_uid)] * 4  # real, effective, saved, fs
    assert fields["Gid"].split() == [str(NOBODY.pw_gid)] * 4
    assert fields["Groups"] == ""
    assert fields["NoNewPrivs"] == "1"
    assert int(fields["CapEff"], 16) == int(fields["CapPrm"], 16) == 0
    assert int(fields["CapInh"], 16) == int(fields["CapAmb"], 16) == 0
    assert fields["NSsid"] == fields["Pid"]  # a session leader: a session of its own
    got = limits(proc_limits)
    assert got["Max cpu time"] == str(timeout + 1)
    assert got["Max address space"] == str(4 << 30)
    assert got["Max file size"] == str(64 << 20)
    assert got["Max open files"] == "256"
    assert got["Max core file size"] == "0"


@pytest.fixture(params=["native", "prlimit+setpriv", "asyncio+wrapper"])
def spawner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The built spawner, and both ways without it: each must confine the same."""
    if request.param == "native":
        if sandbox.native() is None:
            pytest.skip(f"{sandbox.LIBRARY.name} is not built: run `make sandbox`")
        if not command.USE_POSIX_SPAWN:
            pytest.skip("posix_spawn with pidfd is not available here")
    else:
        monkeypatch.setattr(sandbox, "native", lambda: None)
        monkeypatch.setattr(command, "USE_POSIX_SPAWN", request.param == "prlimit+setpriv")
    return str(request.param)


async def run(line: str, timeout: float = 7.0) -> Execution:
    confined = CommandSandbox(user=(NOBODY.pw_uid, NOBODY.pw_gid), limits=CommandLimits())
    return await run_command(
        CommandPayload(command=line), allowed=ALLOWED, timeout=timeout, sandbox=confined
    )


def stdout(execution: Execution) -> str:
    assert execution.ok, execution.error
    assert execution.result is not None
    return str(execution.result["stdout"])


async def test_a_child_runs_as_nobody_with_no_new_privileges_its_session_and_limits(
    spawner: str,
) -> None:
    who = stdout(await run("id -u"))
    proc_status = stdout(await run("cat /proc/self/status"))
    proc_limits = stdout(await run("cat /proc/self/limits"))
    assert_confined(who, proc_status, proc_limits, timeout=7)
    assert stdout(await run("whoami")) == "nobody\n"


async def test_root_files_stay_closed_and_the_time_limit_still_kills(spawner: str) -> None:
    shadow = await run("cat /etc/shadow")
    assert not shadow.ok and "Permission denied" in str(shadow.error)
    slow = await run("sleep 5", timeout=0.3)
    assert not slow.ok and slow.error == "command timed out after 0.3 s"
    missing = await run("no-such-binary")
    assert missing.error == "command failed: 'no-such-binary' is not installed on this worker"


async def test_curl_is_refused_a_file_url_by_its_rule_and_the_refusal_is_counted() -> None:
    before = command.REFUSALS.get("curl.url-scheme", 0)
    refused = await run("curl -s file:///etc/shadow")
    assert refused.ok is False and refused.result is None  # never started
    assert refused.error == (
        "command rejected: curl fetches only http:// and https:// URLs; "
        "got 'file:///etc/shadow' (rule curl.url-scheme)"
    )
    assert command.REFUSALS["curl.url-scheme"] == before + 1


def job(line: str, timeout: int = 9) -> Any:
    return parse_job_spec(
        {"type": "command", "payload": {"command": line}, "timeoutSeconds": timeout}
    )


async def test_a_root_baker_worker_confines_its_command_jobs(
    nats_server: NatsServerProcess,
) -> None:
    async with running_pipeline(nats_server) as pipe:
        beats: list[dict[str, Any]] = []

        async def beat(msg: Msg) -> None:
            doc = json.loads(msg.data)
            if doc.get("service") == "worker":
                beats.append(doc["details"])

        await pipe.raw.subscribe("baker.system.health", cb=beat)
        worker = BakerProcess("worker", env={
            "BAKER_NATS_URL": pipe.server.url, "BAKER_ALLOWED_COMMANDS": ",".join(ALLOWED),
            "BAKER_ACK_WAIT_SECONDS": str(int(pipe.ack_wait)), "BAKER_HEARTBEAT_SECONDS": "0.3",
        })  # fmt: skip
        try:
            worker.wait_for("running")
            lines = ["id -u", "cat /proc/self/status", "cat /proc/self/limits",
                     "cat /etc/shadow", "curl -s file:///etc/shadow"]  # fmt: skip
            jobs = [await pipe.brain.dispatcher.dispatch(job(line)) for line in lines]
            ends = [
                (await pipe.wait_job(j.job_id, {"completed", "failed"})).events[-1].envelope
                for j in jobs
            ]
            counted = {"curl.url-scheme": 1}  # the refusal, in the worker's heartbeat
            await until(lambda: any(b.get("commandRefusals") == counted for b in beats))
        finally:
            await asyncio.to_thread(worker.stop, signal.SIGTERM)
    who, proc_status, proc_limits, shadow, curl = ends
    assert [e.type for e in ends] == ["JobCompleted"] * 3 + ["JobFailed"] * 2
    results = [e.data.result["stdout"] for e in (who, proc_status, proc_limits)]
    assert_confined(*results, timeout=9)
    assert "Permission denied" in shadow.data.error
    assert curl.data.error.endswith("(rule curl.url-scheme)")


def test_a_worker_refuses_to_start_as_a_user_that_does_not_exist(
    nats_server: NatsServerProcess,
) -> None:
    worker = BakerProcess("worker", env={
        "BAKER_NATS_URL": nats_server.url, "BAKER_COMMAND_RUN_AS": "no-such-user-here",
    })  # fmt: skip
    code = worker.wait()
    assert code == 2
    assert any(
        "BAKER_COMMAND_RUN_AS: no user named 'no-such-user-here'" in line for line in worker.lines
    )


def test_the_spawner_names_the_step_that_failed_and_leaves_the_worker_as_it_was() -> None:
    native = sandbox.native()
    if native is None:
        pytest.skip(f"{sandbox.LIBRARY.name} is not built: run `make sandbox`")
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    read, write = os.pipe()
    try:
        bad_limit = sandbox.Confinement(rlimits=((9999, 1),), user=(NOBODY.pw_uid, NOBODY.pw_gid))
        with pytest.raises(OSError, match=r"setting limits for the sandboxed child"):
            native.spawn("/bin/true", ["true"], {}, write, write, bad_limit)
        good = sandbox.Confinement(rlimits=(), user=(NOBODY.pw_uid, NOBODY.pw_gid))
        with pytest.raises(FileNotFoundError):
            native.spawn("/no/such/binary", ["x"], {}, write, write, good)
        pid = native.spawn("/bin/true", ["true"], {}, write, write, good)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    finally:
        os.close(read)
        os.close(write)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask  # unblocked again
    # The child's ids changed in the child only: the worker (sharing its memory) is still root.
    assert os.getresuid() == (0, 0, 0) and os.getresgid() == (0, 0, 0)


async def test_an_agents_command_tool_is_confined_too() -> None:
    script = [tool_use("command", {"command": "id -u"}), text_message("done")]
    confined = CommandSandbox(user=(NOBODY.pw_uid, NOBODY.pw_gid))
    with FakeAnthropic(script) as api:
        execution = await run_agent(
            AgentPayload(prompt="who am I?"), api_key="test-key", base_url=api.base_url,
            allowed_commands=ALLOWED, sandbox=confined,
        )  # fmt: skip
        second = api.requests[1]
    assert execution.ok, execution.error
    (result,) = [b for b in second["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert json.loads(result["content"])["result"]["stdout"] == f"{NOBODY.pw_uid}\n"
