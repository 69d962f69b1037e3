"""The job queue's own lifecycle (aggregate `queue`, one instance `main`): `running ↔ paused`.

A queue nobody has paused is running, so the initial state is `running`; pausing a paused
queue or resuming a running one is a no-op (no event), never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from domain.commands import PauseQueue, Rejected, ResumeQueue
from domain.events import DomainEvent, QueuePaused, QueueResumed, TransitionRejected
from domain.lifecycle.machine import CompiledMachine, MachineSpec, t
from domain.lifecycle.simple import bump, fire_one

QUEUE_ID: Final = "main"  # the one queue: its events are on `baker.events.queue.main`
QUEUE_SPEC: Final = MachineSpec(
    name="queue",
    states=("running", "paused"),
    initial="running",
    terminal=frozenset(),
    transitions=(
        t("pause", "running", "paused", "QueuePaused"),
        t("resume", "paused", "running", "QueueResumed"),
    ),
)


@dataclass(frozen=True, slots=True)
class QueueState:
    status: str = "running"
    version: int = 0
    by: str | None = None  # who paused or resumed it last
    reason: str | None = None

    @property
    def paused(self) -> bool:
        return self.status == "paused"


MACHINE: Final[CompiledMachine[QueueState, Any]] = CompiledMachine(QUEUE_SPEC, {})


def decide(state: QueueState, cmd: PauseQueue | ResumeQueue) -> list[DomainEvent] | Rejected:
    """`pause` and `resume` flip the queue; restating its state records nothing."""
    if isinstance(cmd, PauseQueue):
        paused = QueuePaused(by=cmd.by, reason=cmd.reason)
        return fire_one(MACHINE, state, "pause", cmd, lambda _s, _c: paused, ("paused",))
    resumed = QueueResumed(by=cmd.by, reason=cmd.reason)
    return fire_one(MACHINE, state, "resume", cmd, lambda _s, _c: resumed, ("running",))


def evolve(state: QueueState, event: DomainEvent) -> QueueState:
    if isinstance(event, QueuePaused | QueueResumed):
        status = "paused" if isinstance(event, QueuePaused) else "running"
        return bump(state, status=status, by=event.by, reason=event.reason)
    if isinstance(event, TransitionRejected):
        return bump(state)
    raise TypeError(f"{type(event).__name__} is not a queue event")
