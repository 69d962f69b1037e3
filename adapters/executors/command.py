"""The `command` executor: one allowed binary as a subprocess, never through a shell.

The child runs in its own session (so its own process group) with a minimal env; at the time
limit, or when the job is cancelled, the whole group gets SIGKILL so nothing it started lingers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from adapters.executors.base import Execution, Progress, no_progress
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
from domain.specs import CommandPayload

# What the child may inherit from the worker; everything else (tokens, keys) stays behind.
_INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "TZ", "KUBECONFIG")
_READ_CHUNK = 64 * 1024


@dataclass
class _Sink:
    """Keeps the first `limit` bytes of a stream and counts the rest, so a chatty child
    never blocks on a full pipe and never fills the worker's memory."""

    limit: int
    kept: bytearray = field(default_factory=bytearray)
    total: int = 0

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_READ_CHUNK):
            self.total += len(chunk)
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]

    def text(self) -> tuple[str, bool]:
        text, truncated = cap_output(bytes(self.kept), self.limit, total=self.total)
        return strip_ansi(text), truncated


def base_env() -> dict[str, str]:
    """The minimal env every command starts from."""
    env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8")
    return env


async def run_command(
    payload: CommandPayload,
    *,
    allowed: Iterable[str],
    timeout: float | None,
    progress: Progress = no_progress,
    max_output: int = MAX_OUTPUT_BYTES,
    on_start: Callable[[int], None] | None = None,
) -> Execution:
    """Run the payload's command; a rejection, a failure to start, a non-zero exit or the time
    limit is an `Execution(ok=False)`. Cancellation kills the process group and re-raises."""
    try:
        parsed = parse_command(payload.command, allowed)
    except CommandRejected as exc:
        return Execution(ok=False, error=str(exc))
    started = time.monotonic()
    try:
        proc = await _spawn(parsed)
    except OSError as exc:
        return Execution(ok=False, error=_start_error(parsed, exc))
    # No progress report here: `running` already says it started, and every report is an event.
    if on_start is not None:
        on_start(proc.pid)
    limit = effective_timeout(timeout)
    out, err = _Sink(max_output), _Sink(max_output)
    timed_out = False
    try:
        async with asyncio.timeout(limit):
            await asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr))
            await proc.wait()
    except TimeoutError:
        timed_out = True
        await _kill_group(proc)
    except asyncio.CancelledError:
        await _kill_group(proc)
        raise
    return _execution(proc, out, err, started, timed_out, limit)


async def _spawn(parsed: ParsedCommand) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *parsed.argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(base_env(), parsed.env),
        start_new_session=True,
    )


def _start_error(parsed: ParsedCommand, exc: OSError) -> str:
    name = parsed.argv[0]
    if isinstance(exc, FileNotFoundError):
        return f"command failed: '{name}' is not installed on this worker"
    if isinstance(exc, PermissionError):
        return f"command failed: '{name}' is not executable"
    return f"command failed: could not start '{name}': {exc.strerror or exc}"


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's whole process group, then reap the child.

    The signal is sent before the first await, so even a second cancellation while we wait
    cannot leave the group running.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # The child is a session leader, so its process group id is its pid.
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()  # covers a child that left its group
    await asyncio.shield(proc.wait())


def _execution(
    proc: asyncio.subprocess.Process,
    out: _Sink,
    err: _Sink,
    started: float,
    timed_out: bool,
    limit: float,
) -> Execution:
    stdout, out_cut = out.text()
    stderr, err_cut = err.text()
    code = proc.returncode if proc.returncode is not None else -int(signal.SIGKILL)
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
