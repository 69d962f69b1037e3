"""Folds of tasks, extensions, services, Brains and handoffs: (row, event) -> row, pure."""

from __future__ import annotations

from typing import Any

import orjson

from domain.events import (
    BrainActivated,
    BrainDrainStarted,
    BrainResumed,
    BrainShutDown,
    BrainStarted,
    Envelope,
    ExtensionAnnounced,
    ExtensionCameOnline,
    ExtensionDeregistered,
    ExtensionToolsDiscovered,
    ExtensionWentOffline,
    HandoffAborted,
    HandoffCompleted,
    HandoffDrainStarted,
    HandoffRequested,
    ServiceDown,
    ServiceUp,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskLaunched,
    TaskProgressed,
    TaskStarted,
    TaskTimedOut,
    TransitionRejected,
    format_time,
)
from projections.jobs import FoldError

Row = dict[str, Any]

TASK_COLUMNS = (
    "id", "goal", "mode", "toolbox", "launcher", "status", "timeout_seconds", "deadline_at",
    "progress", "result", "error", "created_at", "started_at", "finished_at", "updated_at",
    "duration_ms", "version", "last_seq",
)  # fmt: skip
EXTENSION_COLUMNS = (
    "id", "name", "version", "description", "mcp_url", "tools", "status", "registered_at",
    "changed_at", "reason", "event_version", "last_seq",
)  # fmt: skip
SERVICE_COLUMNS = (
    "id", "service", "instance", "version", "status", "since", "reason", "event_version",
    "last_seq",
)  # fmt: skip
BRAIN_COLUMNS = (
    "instance", "status", "version", "role", "generation", "handoff_id", "started_at",
    "updated_at", "reason", "event_version", "last_seq",
)  # fmt: skip
HANDOFF_COLUMNS = (
    "id", "status", "from_instance", "from_version", "to_instance", "to_version", "generation",
    "requested_at", "finished_at", "reason", "event_version", "last_seq",
)  # fmt: skip


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _require(row: Row | None, env: Envelope) -> Row:
    if row is None:
        raise FoldError(f"{env.type} for {env.aggregate} {env.aggregate_id} with no prior record")
    return dict(row)


def fold_task(row: Row | None, env: Envelope, seq: int) -> Row:
    data, at = env.data, format_time(env.occurred_at)
    if isinstance(data, TaskLaunched):
        if row is not None:
            raise FoldError(f"task {env.aggregate_id} launched twice")
        new: Row = dict.fromkeys(TASK_COLUMNS)
        new.update(
            id=env.aggregate_id, goal=data.goal, mode=data.mode, toolbox=data.toolbox,
            launcher=data.launcher, status="launched", timeout_seconds=data.timeout_seconds,
            deadline_at=format_time(data.deadline_at) if data.deadline_at else None,
            created_at=at,
        )  # fmt: skip
    else:
        new = _require(row, env)
        _task_step(new, data, at)
    new.update(updated_at=at, version=env.version, last_seq=seq)
    return new


def _task_step(row: Row, data: Any, at: str) -> None:
    if isinstance(data, TaskStarted | TaskProgressed):
        row["status"] = "running"
        row["started_at"] = row["started_at"] or at
        if isinstance(data, TaskProgressed):
            row["progress"] = data.message
        return
    terminal = {
        TaskCompleted: "completed",
        TaskFailed: "failed",
        TaskTimedOut: "timed_out",
        TaskCancelled: "cancelled",
    }.get(type(data))
    if terminal is None:
        if isinstance(data, TransitionRejected):
            return
        raise FoldError(f"{type(data).__name__} is not a task event")
    row.update(status=terminal, finished_at=at)
    if isinstance(data, TaskCompleted):
        row.update(result=_json(data.result), duration_ms=data.duration_ms)
    elif isinstance(data, TaskFailed):
        row.update(error=data.error, duration_ms=data.duration_ms)
    elif isinstance(data, TaskTimedOut):
        row["error"] = f"timed out after {data.timeout_seconds}s"
    elif isinstance(data, TaskCancelled):
        row["error"] = data.reason


def fold_extension(row: Row | None, env: Envelope, seq: int) -> Row:
    data, at = env.data, format_time(env.occurred_at)
    if isinstance(data, ExtensionAnnounced):
        new: Row = dict(row) if row is not None else dict.fromkeys(EXTENSION_COLUMNS)
        new.update(
            id=env.aggregate_id, name=data.name, version=data.version,
            description=data.description, mcp_url=data.mcp_url, tools=_json(data.tools),
            status="online", reason=None,
        )  # fmt: skip
        new["registered_at"] = new["registered_at"] or at
    else:
        new = _require(row, env)
        if isinstance(data, ExtensionToolsDiscovered):
            new["tools"] = _json(data.tools)
        elif isinstance(data, ExtensionWentOffline):
            new.update(status="offline", reason=f"missed {data.missed_heartbeats} heartbeats")
        elif isinstance(data, ExtensionCameOnline):
            new.update(status="online", reason=None)
        elif isinstance(data, ExtensionDeregistered):
            new.update(status="deregistered", reason=data.reason)
        elif not isinstance(data, TransitionRejected):
            raise FoldError(f"{type(data).__name__} is not an extension event")
    if not isinstance(data, TransitionRejected | ExtensionToolsDiscovered):
        new["changed_at"] = at
    new.update(event_version=env.version, last_seq=seq)
    return new


def fold_service(row: Row | None, env: Envelope, seq: int) -> Row:
    data, at = env.data, format_time(env.occurred_at)
    if isinstance(data, ServiceUp):
        new: Row = dict(row) if row is not None else dict.fromkeys(SERVICE_COLUMNS)
        new.update(
            id=env.aggregate_id, service=data.service, instance=data.instance,
            version=data.version, status="up", since=at, reason=None,
        )  # fmt: skip
    else:
        new = _require(row, env)
        if isinstance(data, ServiceDown):
            new.update(status="down", since=at, reason=data.reason)
        elif not isinstance(data, TransitionRejected):
            raise FoldError(f"{type(data).__name__} is not a service event")
    new.update(event_version=env.version, last_seq=seq)
    return new


def fold_brain(row: Row | None, env: Envelope, seq: int) -> Row:
    data, at = env.data, format_time(env.occurred_at)
    if isinstance(data, BrainStarted):
        new: Row = dict.fromkeys(BRAIN_COLUMNS)
        new.update(
            instance=env.aggregate_id, status="pending", version=data.version,
            role=data.role, generation=0, started_at=at,
        )  # fmt: skip
    else:
        new = _require(row, env)
        if isinstance(data, BrainActivated):
            new.update(status="active", generation=data.generation, handoff_id=None)
        elif isinstance(data, BrainDrainStarted):
            new.update(status="draining", handoff_id=data.handoff_id)
        elif isinstance(data, BrainResumed):
            new.update(status="active", handoff_id=None, reason=data.reason)
        elif isinstance(data, BrainShutDown):
            new.update(status="shutdown", reason=data.reason)
        elif not isinstance(data, TransitionRejected):
            raise FoldError(f"{type(data).__name__} is not a brain event")
    new.update(updated_at=at, event_version=env.version, last_seq=seq)
    return new


def fold_handoff(row: Row | None, env: Envelope, seq: int) -> Row:
    data, at = env.data, format_time(env.occurred_at)
    if isinstance(data, HandoffRequested):
        new: Row = dict.fromkeys(HANDOFF_COLUMNS)
        new.update(
            id=env.aggregate_id, status="requested", from_instance=data.from_instance,
            to_instance=data.to_instance, to_version=data.to_version,
            generation=data.generation, requested_at=at,
        )  # fmt: skip
    else:
        new = _require(row, env)
        if isinstance(data, HandoffDrainStarted):
            new.update(
                status="draining", from_instance=data.from_instance, from_version=data.from_version
            )
        elif isinstance(data, HandoffCompleted):
            new.update(status="completed", finished_at=at, generation=data.generation)
        elif isinstance(data, HandoffAborted):
            new.update(status="aborted", finished_at=at, reason=data.reason)
        elif not isinstance(data, TransitionRejected):
            raise FoldError(f"{type(data).__name__} is not a handoff event")
    new.update(event_version=env.version, last_seq=seq)
    return new
