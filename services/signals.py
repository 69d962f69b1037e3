"""Ctrl-C and SIGTERM set a stop event that every daemon loop watches; `wait_stopped` then
waits for the loops, naming any that takes long to end."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Any


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGINT or SIGTERM (only possible from the main thread)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            return


async def wait_stopped(
    tasks: Sequence[asyncio.Task[Any]], log: logging.Logger, *, every: float = 10.0
) -> None:
    """Wait for every task to end, whatever each ends with. While some are still running,
    every `every` seconds one warning names them and where each waits, so a part that does
    not stop shows itself instead of holding the process silently."""
    pending = set(tasks)
    waited = 0.0
    while pending:
        _, pending = await asyncio.wait(pending, timeout=every)
        waited += every
        if pending:
            where = "; ".join(f"{t.get_name()} at {awaiting(t)}" for t in _by_name(pending))
            log.warning("still stopping after %.0f s: %s", waited, where)
    for task in tasks:  # retrieved, as gather(return_exceptions=True) would: the caller decides
        if not task.cancelled():
            task.exception()


def watch_stopping(log: logging.Logger, *, every: float = 20.0) -> asyncio.Task[None]:
    """Until cancelled, every `every` seconds one warning says where the calling task (the
    one stopping the process) waits: a stop that hangs after its parts ended (closing a
    connection, a thread, the server) shows where."""
    stopping = asyncio.current_task()
    assert stopping is not None, "called from a task"

    async def watch() -> None:
        waited = 0.0
        while True:
            await asyncio.sleep(every)  # a report's period, not a wait for anything
            waited += every
            log.warning("still stopping after %.0f s, at %s", waited, awaiting(stopping))

    return asyncio.create_task(watch(), name="stop-watch")


def _by_name(tasks: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    return sorted(tasks, key=lambda t: t.get_name())


def awaiting(task: asyncio.Task[Any]) -> str:
    """Where a suspended task waits: its chain of awaits, outermost first, as
    `function (file:line)` (the task's own stack shows only the outermost frame)."""
    steps: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and len(steps) < 32:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            steps.append(f"{code.co_name} ({_short(code.co_filename)}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " > ".join(steps) or "(no frame)"


_PACKAGES = frozenset({"adapters", "services", "domain", "projections"})


def _short(path: str) -> str:
    """A path from the package root on, or the file's name for another library's."""
    parts = path.replace("\\", "/").split("/")
    roots = [i for i, part in enumerate(parts) if part in _PACKAGES]
    return "/".join(parts[roots[-1] :] if roots else parts[-2:])
