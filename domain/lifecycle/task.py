"""The task lifecycle: launched → running → completed | failed | timed_out | cancelled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from domain.commands import CancelTask, LaunchTask, RecordTaskStatus, Rejected, TimeOutTask
from domain.events import (
    DomainEvent,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskLaunched,
    TaskProgressed,
    TaskStarted,
    TaskTimedOut,
    TransitionRejected,
)
from domain.lifecycle.machine import CompiledMachine, MachineSpec, t
from domain.lifecycle.simple import bump, fire_one

ACTIVE: Final = ("launched", "running")
TERMINAL: Final = frozenset({"completed", "failed", "timed_out", "cancelled"})
MAX_TIMEOUT_SECONDS: Final = 1800

SPEC: Final = MachineSpec(
    name="task",
    states=("new", *ACTIVE, *sorted(TERMINAL)),
    initial="new",
    terminal=TERMINAL,
    transitions=(
        t("launch", "new", "launched", "TaskLaunched"),
        t("start", "launched", "running", "TaskStarted"),
        t("progress", ACTIVE, "running", "TaskProgressed"),
        t("complete", ACTIVE, "completed", "TaskCompleted"),
        t("fail", ACTIVE, "failed", "TaskFailed"),
        t("time_out", ACTIVE, "timed_out", "TaskTimedOut"),
        t("cancel", ACTIVE, "cancelled", "TaskCancelled"),
    ),
)


@dataclass(frozen=True, slots=True)
class TaskState:
    status: str = "new"
    version: int = 0
    timeout_seconds: int = MAX_TIMEOUT_SECONDS

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


TaskCommand = LaunchTask | RecordTaskStatus | TimeOutTask | CancelTask
MACHINE: Final[CompiledMachine[TaskState, Any]] = CompiledMachine(SPEC, {})
_DEST: Final = {tr.trigger: tr.dest or "" for tr in SPEC.transitions}
_STATUS_TRIGGER: Final = {
    "running": "start",
    "progress": "progress",
    "completed": "complete",
    "failed": "fail",
    "timeout": "time_out",
    "cancelled": "cancel",
}
_EVENT_FOR: Final[dict[str, Callable[[TaskState, Any], DomainEvent]]] = {
    "launch": lambda s, c: TaskLaunched(
        goal=c.goal,
        mode=c.mode,
        toolbox=c.toolbox,
        timeout_seconds=c.timeout_seconds,
        launcher=c.launcher,
        deadline_at=c.deadline_at,
    ),
    "start": lambda s, c: TaskStarted(runner_id=c.runner_id),
    "progress": lambda s, c: TaskProgressed(message=c.message or "", kind=c.kind),
    "complete": lambda s, c: TaskCompleted(result=c.result, duration_ms=c.duration_ms),
    "fail": lambda s, c: TaskFailed(
        error=c.error or "the task runner reported a failure", duration_ms=c.duration_ms
    ),
    "time_out": lambda s, c: TaskTimedOut(timeout_seconds=s.timeout_seconds),
    "cancel": lambda s, c: TaskCancelled(
        reason=getattr(c, "reason", None) or getattr(c, "message", None)
    ),
}


def decide(state: TaskState, cmd: TaskCommand) -> list[DomainEvent] | Rejected:
    """What happens when `cmd` meets a task in `state`."""
    if isinstance(cmd, LaunchTask):
        trigger = "launch"
    elif isinstance(cmd, RecordTaskStatus):
        trigger = _STATUS_TRIGGER[cmd.status]
    elif isinstance(cmd, TimeOutTask):
        trigger = "time_out"
    else:
        trigger = "cancel"
    if trigger == "launch":
        noop: tuple[str, ...] = SPEC.states[1:]  # relaunching an existing task id
    elif trigger == "progress":
        noop = ()
    else:
        noop = (_DEST[trigger],)
    return fire_one(MACHINE, state, trigger, cmd, _EVENT_FOR[trigger], noop)


def evolve(state: TaskState, event: DomainEvent) -> TaskState:
    """The task state after `event`."""
    if isinstance(event, TaskLaunched):
        return bump(state, status="launched", timeout_seconds=event.timeout_seconds)
    status = _STATUS_AFTER.get(type(event))
    if status is None and not isinstance(event, TransitionRejected):
        raise TypeError(f"{type(event).__name__} is not a task event")
    return bump(state, status=status or state.status)


_STATUS_AFTER: Final[dict[type[DomainEvent], str]] = {
    TaskStarted: "running",
    TaskProgressed: "running",
    TaskCompleted: "completed",
    TaskFailed: "failed",
    TaskTimedOut: "timed_out",
    TaskCancelled: "cancelled",
}
