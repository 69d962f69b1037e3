"""Cancelling a task: `TaskCancelled` in the log, then its runner stopped.

The Brain asks every launcher on `baker.tasks.cancel.<taskId>` (core request/reply, no queue
group); the launcher that runs the task stops it and answers, the others stay silent. The
subject is captured by no stream (`BAKER_TASKS` holds only status and result).
"""

from __future__ import annotations

import logging
from typing import Any

from domain.commands import CancelTask
from domain.ids import InvalidId, check_id
from domain.tasks import StopReply, decode
from domain.wire import WireError
from services.executor import CommandExecutor
from services.ports.bus import Bus, BusClosed, NoResponders

log = logging.getLogger("baker.tasks")

CANCEL_PREFIX = "baker.tasks.cancel"


def cancel_subject(task_id: str) -> str:
    return f"{CANCEL_PREFIX}.{check_id(task_id, 'task id')}"


async def cancel_task(
    bus: Bus,
    store: CommandExecutor,
    task_id: str,
    reason: str | None = None,
    *,
    stop_within: float = 2.0,
) -> tuple[int, dict[str, Any]]:
    """Cancel a task: 404 unknown, 409 already finished (the refusal is recorded), else 202
    once `TaskCancelled` is stored and its launcher was asked to stop the runner."""
    try:
        check_id(task_id, "task id")
    except InvalidId:
        return 404, {"error": f"no task {task_id!r}"}
    _, position = await store.current("task", task_id)
    if position.version == 0:
        return 404, {"error": f"no task {task_id!r}"}
    command = CancelTask(reason=reason or "cancelled by request")
    outcome = await store.execute("task", task_id, command)
    if not outcome.changed:  # refused (finished), or a no-op (cancelled already)
        state = outcome.state.status
        return 409, {"error": f"task {task_id} is already {state}", "status": state}
    log.info("task %s cancelled: %s", task_id, command.reason, extra={"task_id": task_id})
    runner = await stop_runner(bus, task_id, stop_within)
    return 202, {"id": task_id, "status": "cancelled", "runner": runner}


async def stop_runner(bus: Bus, task_id: str, within: float) -> dict[str, Any]:
    """Ask the launchers to stop the task's runner; what the one running it answered."""
    try:
        msg = await bus.request(cancel_subject(task_id), b"", timeout=within)
    except NoResponders:
        return {"stopped": False, "detail": "no task launcher is running"}
    except TimeoutError:  # nobody runs it any more (finished, vanished, or never started)
        return {"stopped": False, "detail": f"no launcher runs it (no answer in {within:g}s)"}
    except BusClosed:
        return {"stopped": False, "detail": "NATS connection closed: launchers not told"}
    try:
        reply = decode(StopReply, msg.data)
    except WireError as exc:
        reply = StopReply(ok=False, launcher="?", error=f"unreadable answer: {exc}")
    if not reply.ok:
        log.warning("task %s: launcher %s could not stop it: %s", task_id, reply.launcher,
                    reply.error, extra={"task_id": task_id})  # fmt: skip
    doc: dict[str, Any] = {"stopped": reply.ok, "launcher": reply.launcher}
    doc["detail"] = reply.detail if reply.ok else (reply.error or "")
    return doc
