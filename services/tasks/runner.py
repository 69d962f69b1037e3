"""The task runner: `python -m services.tasks.runner`, one task per process (or pod).

Environment: `NATS_URL` and `TASK_ID` (required); `BAKER_ALLOWED_COMMANDS` (script tasks and
the agent's `command` tool; default: the digest's allowlist); `ANTHROPIC_API_KEY`,
`ANTHROPIC_BASE_URL`, `BAKER_DEFAULT_MODEL` (agent tasks). It asks for its instructions on
`baker.tasks.instructions.<TASK_ID>`, reports `running`, runs the goal (`script`: one allowed
command line, no shell; `agent`: the Claude tool-use loop, each iteration a progress message),
and publishes its result to JetStream, waiting for the ack. Exit 0 once the result is stored,
1 when it could not report, 2 on a bad environment. SIGTERM ends the work and is reported.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from adapters.executors.base import Execution
from adapters.executors.command import prefer_pidfd_watcher, run_command
from adapters.nats.bus import NatsBus
from adapters.nats.client import Client
from adapters.nats.connector import NatsUnavailable, Options
from adapters.nats.publisher import JetStreamError, JetStreamPublisher, PublishUnavailable
from domain.command_policy import DEFAULT_COMMAND_TIMEOUT, parse_allowed_commands
from domain.ids import InvalidId, check_id
from domain.redaction import redact_text, redact_value
from domain.specs import AgentPayload, CommandPayload
from domain.tasks import (
    LaunchRequest,
    ProgressKind,
    ResultStatus,
    RunnerStatus,
    TaskResultMessage,
    TaskStatusMessage,
    decode,
    instructions_subject,
    result_subject,
    status_subject,
)
from domain.wire import WireError
from services.ports.bus import Bus, NoResponders

MARGIN = 0.5  # the runner reports its own timeout this long before the deadline


class NoInstructions(Exception):
    """Nobody answered with this task's instructions."""


class Publisher(Protocol):
    """A publish to a stream that returns once the stream has stored it (or raises
    `JetStreamError` / `PublishUnavailable`)."""

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> object: ...


class Reporter:
    """Status and result messages to JetStream, each with a `Nats-Msg-Id`, acks awaited."""

    def __init__(self, publisher: Publisher, task_id: str, runner_id: str) -> None:
        self.task_id, self.runner_id = task_id, runner_id
        self.traceparent: str | None = None
        self._publisher = publisher
        self._count = 0

    def _headers(self, msg_id: str) -> dict[str, str]:
        headers = {"Nats-Msg-Id": msg_id}
        if self.traceparent:
            headers["traceparent"] = self.traceparent
        return headers

    async def status(self, status: RunnerStatus, kind: ProgressKind, message: str) -> None:
        self._count += 1
        msg = TaskStatusMessage(
            task_id=self.task_id,
            status=status,
            type=kind,
            message=redact_text(message)[:8192],  # DESIGN §12: masked, then cut
            timestamp=datetime.now(UTC),
            runner_id=self.runner_id,
        )
        msg_id = f"{self.task_id}:status:{self._count}"
        await self._publisher.publish(
            status_subject(self.task_id), msg.encode(), self._headers(msg_id)
        )

    async def result(
        self, status: ResultStatus, result: Any, error: str | None, duration_ms: int
    ) -> None:
        msg = TaskResultMessage(
            task_id=self.task_id,
            status=status,
            result=redact_value(result),  # DESIGN §12
            error=None if error is None else redact_text(error),
            duration_ms=duration_ms,
            runner_id=self.runner_id,
        )
        headers = self._headers(f"{self.task_id}:result")
        await self._publisher.publish(result_subject(self.task_id), msg.encode(), headers)


async def fetch_instructions(bus: Bus, task_id: str, within: float = 15.0) -> LaunchRequest:
    """Ask the launcher for this task's instructions, retrying silence for `within` seconds."""
    deadline = time.monotonic() + within
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            msg = await bus.request(instructions_subject(task_id), b"", timeout=2.0)
        except (NoResponders, TimeoutError) as exc:
            last = type(exc).__name__
            await asyncio.sleep(0.2)
            continue
        try:
            request = decode(LaunchRequest, msg.data)
        except WireError as exc:
            raise NoInstructions(f"unreadable instructions: {exc}") from None
        if request.task_id != task_id:
            raise NoInstructions(f"instructions are for {request.task_id}, not {task_id}")
        return request
    raise NoInstructions(f"no instructions for {task_id} within {within:g}s ({last})")


async def execute(spec: LaunchRequest, reporter: Reporter) -> tuple[ResultStatus, Execution]:
    """Run the goal within the deadline; the outcome and the executor's `Execution`."""
    budget = max((spec.deadline_at - datetime.now(UTC)).total_seconds() - MARGIN, 0.1)
    allowed = parse_allowed_commands(os.environ.get("BAKER_ALLOWED_COMMANDS"))
    try:
        async with asyncio.timeout(budget + MARGIN / 2):
            if spec.mode == "script":
                payload = CommandPayload(command=spec.goal)
                execution = await run_command(payload, allowed=allowed, timeout=budget)
            else:
                execution = await _agent(spec, reporter, allowed)
    except TimeoutError:
        return "timeout", Execution(ok=False, error=f"task exceeded {spec.timeout_seconds}s")
    except ValidationError as exc:
        return "failed", Execution(ok=False, error=f"invalid goal: {exc.errors()[0]['msg']}")
    result = execution.result
    if isinstance(result, dict) and result.get("timedOut") and budget <= DEFAULT_COMMAND_TIMEOUT:
        return "timeout", execution  # the command hit the task's deadline, not its 30 s limit
    return ("completed" if execution.ok else "failed"), execution


async def _agent(spec: LaunchRequest, reporter: Reporter, allowed: tuple[str, ...]) -> Execution:
    from adapters.executors.agent import run_agent  # noqa: PLC0415 - slow import, agents only

    async def progress(text: str) -> None:
        kind: ProgressKind = "tool_call" if ": tool " in text else "milestone"
        try:
            await reporter.status("progress", kind, text)
        except (PublishUnavailable, JetStreamError) as exc:
            print(f"progress not reported: {exc}", file=sys.stderr)

    return await run_agent(
        AgentPayload(prompt=spec.goal),
        api_key=os.environ.get("ANTHROPIC_API_KEY"),
        base_url=os.environ.get("ANTHROPIC_BASE_URL") or None,
        default_model=os.environ.get("BAKER_DEFAULT_MODEL") or None,
        allowed_commands=allowed,
        progress=progress,
    )


async def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ) if env is None else env
    try:
        task_id = check_id(env.get("TASK_ID", ""), "TASK_ID")
        nats_url = env["NATS_URL"]
    except (InvalidId, KeyError) as exc:
        print(f"task runner: bad environment: {exc} (needs NATS_URL and TASK_ID)", file=sys.stderr)
        return 2
    prefer_pidfd_watcher()
    runner_id = f"{env.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}"
    try:
        nc = await Client.connect(Options(url=nats_url, name=f"baker-runner-{task_id}"))
    except NatsUnavailable as exc:
        print(f"task runner: {exc}", file=sys.stderr)
        return 1
    reporter = Reporter(JetStreamPublisher(nc, retry_for=30.0), task_id, runner_id)
    try:
        return await _run(NatsBus(nc), reporter)
    except (PublishUnavailable, JetStreamError) as exc:
        print(f"task runner: could not report to JetStream: {exc}", file=sys.stderr)
        return 1
    finally:
        await nc.close()


async def _run(bus: Bus, reporter: Reporter) -> int:
    started = time.monotonic()
    try:
        spec = await fetch_instructions(bus, reporter.task_id)
    except NoInstructions as exc:
        await reporter.result("failed", None, str(exc), 0)
        return 1
    reporter.traceparent = spec.traceparent
    await reporter.status("running", "milestone", f"runner {reporter.runner_id} started")
    work = asyncio.create_task(execute(spec, reporter))
    terminated = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, terminated.set)
    stopper = asyncio.create_task(terminated.wait())
    await asyncio.wait([work, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not work.done():  # SIGTERM: stop the work (its subprocess group is killed) and say so
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        late = datetime.now(UTC) >= spec.deadline_at
        status: ResultStatus = "timeout" if late else "failed"
        execution = Execution(ok=False, error="the task runner was terminated (SIGTERM)")
    elif (failure := work.exception()) is not None:  # a bug of ours: still say so
        status, execution = "failed", Execution(ok=False, error=f"task runner error: {failure!r}")
    else:
        status, execution = work.result()
    duration = round((time.monotonic() - started) * 1000)
    await reporter.result(status, execution.result, execution.error, duration)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
