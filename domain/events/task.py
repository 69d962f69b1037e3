"""Events of the task aggregate (task pods)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from domain.events.base import DomainEvent

TaskMode = Literal["agent", "script"]


class TaskEvent(DomainEvent):
    aggregate: ClassVar[str] = "task"


class TaskLaunched(TaskEvent):
    goal: str
    mode: TaskMode
    toolbox: str | None = None
    timeout_seconds: int
    launcher: str = "local"
    deadline_at: datetime | None = None


class TaskStarted(TaskEvent):
    runner_id: str | None = None


class TaskProgressed(TaskEvent):
    message: str
    kind: str = "log"


class TaskCompleted(TaskEvent):
    result: Any = None
    duration_ms: int | None = None


class TaskFailed(TaskEvent):
    error: str
    duration_ms: int | None = None


class TaskTimedOut(TaskEvent):
    timeout_seconds: int


class TaskCancelled(TaskEvent):
    reason: str | None = None


TASK_EVENTS: tuple[type[TaskEvent], ...] = (
    TaskLaunched,
    TaskStarted,
    TaskProgressed,
    TaskCompleted,
    TaskFailed,
    TaskTimedOut,
    TaskCancelled,
)
