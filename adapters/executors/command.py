"""The `command` executor: one allowed binary as a subprocess, never through a shell.

The child runs in its own session (so its own process group) with a minimal env; at the time
limit, or when the job is cancelled, the whole group gets SIGKILL so nothing it started lingers.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.executors import sandbox as confine
from adapters.executors import spawn
from adapters.executors.base import Execution, Output, Progress, no_output, no_progress
from domain.command_policy import (
    MAX_OUTPUT_BYTES,
    CommandRejected,
    ParsedCommand,
    cap_output,
    child_env,
    effective_timeout,
    parse_command,
    strip_ansi,
)
from domain.command_sandbox import DEFAULT_SANDBOX, CommandSandbox
from domain.specs import CommandPayload

log = logging.getLogger(__name__)

# What the child may inherit from the worker; everything else (tokens, keys) stays behind.
_INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "TZ", "KUBECONFIG")
_READ_CHUNK = 64 * 1024
USE_POSIX_SPAWN = spawn.supported()
REFUSALS: dict[str, int] = {}  # refusals by rule since the process started


@dataclass
class _Sink:
    """Keeps the first `limit` bytes of a stream and counts the rest, so a chatty child
    never blocks on a full pipe and never fills the worker's memory."""

    limit: int
    live: Callable[[str], None] | None = None  # the stream's live output, as text
    kept: bytearray = field(default_factory=bytearray)
    total: int = 0
    # Live output is decoded chunk by chunk: a character split between reads waits here.
    decoder: codecs.IncrementalDecoder | None = None

    def __post_init__(self) -> None:
        if self.live is not None:
            self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
        if self.live is not None and self.decoder is not None:
            self.live(self.decoder.decode(chunk))

    def text(self) -> tuple[str, bool]:
        text, truncated = cap_output(bytes(self.kept), self.limit, total=self.total)
        return strip_ansi(text), truncated


class Child(Protocol):
    pid: int

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    async def wait_for(self, limit: float) -> bool: ...

    def kill_group(self) -> None: ...

    async def reaped(self) -> None: ...


class _AsyncioChild:
    """asyncio's subprocess behind the same face as `spawn.Child` (where that is missing)."""

    def __init__(self, proc: asyncio.subprocess.Process, out: _Sink, err: _Sink) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._drained = asyncio.ensure_future(
            asyncio.gather(_drain(proc.stdout, out), _drain(proc.stderr, err))
        )

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def wait(self) -> int:
        await asyncio.shield(self._drained)
        return await self.proc.wait()

    async def wait_for(self, limit: float) -> bool:
        try:
            async with asyncio.timeout(limit):
                await self.wait()
        except TimeoutError:
            return False
        return True

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # a session leader: its group id is its pid
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()  # covers a child that left its group

    async def reaped(self) -> None:
        await asyncio.shield(self.proc.wait())
        self._drained.cancel()


async def _drain(stream: asyncio.StreamReader | None, sink: _Sink) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_READ_CHUNK):
        sink.feed(chunk)


def base_env() -> dict[str, str]:
    """The minimal env every command starts from (a fresh copy: callers may change it)."""
    return dict(_base_env())


@functools.cache
def _base_env() -> tuple[tuple[str, str], ...]:
    # Read once: a worker's own env does not change while it runs.
    env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8")
    return tuple(env.items())


@functools.lru_cache(maxsize=1024)
def _parse(command: str, allowed: tuple[str, ...]) -> ParsedCommand:
    """`parse_command`, remembered: the same few commands come again and again (a rejection
    is not remembered and is worked out again, which is fine: it is never run)."""
    return parse_command(command, allowed)


async def run_command(
    payload: CommandPayload,
    *,
    allowed: Iterable[str],
    timeout: float | None,
    progress: Progress = no_progress,
    max_output: int = MAX_OUTPUT_BYTES,
    on_start: Callable[[int], None] | None = None,
    output: Output = no_output,
    sandbox: CommandSandbox = DEFAULT_SANDBOX,
) -> Execution:
    """Run the payload's command, confined as `sandbox` says, its stdout and stderr going to
    `output` as they come; a rejection, a failure to start, a non-zero exit or the time limit
    is an `Execution(ok=False)`. Cancellation kills the process group and re-raises."""
    try:
        parsed = _parse(payload.command, tuple(allowed))
    except CommandRejected as exc:
        REFUSALS[exc.rule] = REFUSALS.get(exc.rule, 0) + 1
        # The rule only: the command line itself may carry a secret.
        log.warning("command refused by rule %s", exc.rule)
        return Execution(ok=False, error=str(exc))
    started = time.monotonic()
    live = output is not no_output
    out = _Sink(max_output, functools.partial(output, "stdout") if live else None)
    err = _Sink(max_output, functools.partial(output, "stderr") if live else None)
    try:
        child = await _spawn(parsed, out, err, confine.confinement(sandbox, timeout))
    except OSError as exc:
        return Execution(ok=False, error=_start_error(parsed, exc))
    # No progress report here: `running` already says it started, and every report is an event.
    if on_start is not None:
        on_start(child.pid)
    limit = effective_timeout(timeout)
    try:
        timed_out = not await child.wait_for(limit)
    except asyncio.CancelledError:
        await _kill(child)
        raise
    if timed_out:
        await _kill(child)
    return _execution(child.returncode, out, err, started, timed_out, limit)


async def _spawn(parsed: ParsedCommand, out: _Sink, err: _Sink, conf: confine.Confinement) -> Child:
    env = child_env(base_env(), parsed.env)
    if USE_POSIX_SPAWN:
        return spawn.Child.spawn(parsed.argv, env, out.feed, err.feed, conf)
    argv: list[str] = list(parsed.argv)
    if conf.user is not None:  # no vfork of our own here: the wrapper does it all
        argv = confine.wrapped(spawn.resolve(argv[0], env.get("PATH", os.defpath)), argv, conf)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    if conf.user is None:
        confine.limit(proc.pid, conf)
    return _AsyncioChild(proc, out, err)


async def _kill(child: Child) -> None:
    """SIGKILL the child's whole process group, then reap the child. The signal goes out
    before the first await, so even a second cancellation cannot leave the group running."""
    child.kill_group()
    await child.reaped()


def _start_error(parsed: ParsedCommand, exc: OSError) -> str:
    name = parsed.argv[0]
    if isinstance(exc, FileNotFoundError):
        return f"command failed: '{name}' is not installed on this worker"
    if isinstance(exc, PermissionError):
        return f"command failed: '{name}' is not executable"
    return f"command failed: could not start '{name}': {exc.strerror or exc}"


def _execution(
    returncode: int | None,
    out: _Sink,
    err: _Sink,
    started: float,
    timed_out: bool,
    limit: float,
) -> Execution:
    stdout, out_cut = out.text()
    stderr, err_cut = err.text()
    code = returncode if returncode is not None else -int(signal.SIGKILL)
    result: dict[str, Any] = {
        "exitCode": code,
        "stdout": stdout,
        "stderr": stderr,
        "truncated": out_cut or err_cut,
        "durationMs": round((time.monotonic() - started) * 1000),
        "timedOut": timed_out,
    }
    if timed_out:
        return Execution(ok=False, result=result, error=f"command timed out after {limit:g} s")
    if code != 0:
        return Execution(ok=False, result=result, error=_exit_error(code, stderr))
    return Execution(ok=True, result=result)


def _exit_error(code: int, stderr: str) -> str:
    first = next((line.strip() for line in stderr.splitlines() if line.strip()), "")
    detail = f": {first[:200]}" if first else ""
    if code < 0:
        return f"command killed by signal {-code} (exit code {code}){detail}"
    return f"command exited with code {code}{detail}"


def prefer_pidfd_watcher() -> None:
    """On Python 3.11 asyncio waits for each child in a thread of its own; a pidfd watcher
    (the default from 3.12 on) watches children from the event loop instead."""
    if sys.version_info >= (3, 12) or not hasattr(asyncio, "PidfdChildWatcher"):
        return
    watcher = asyncio.get_child_watcher()
    if not isinstance(watcher, asyncio.PidfdChildWatcher):
        try:
            os.close(os.pidfd_open(os.getpid()))
        except (AttributeError, OSError):
            return  # the kernel has no pidfd: keep the default watcher
        watcher = asyncio.PidfdChildWatcher()
        asyncio.set_child_watcher(watcher)
    watcher.attach_loop(asyncio.get_running_loop())
