"""Every aggregate's lifecycle behind three pure functions: `decide`, `evolve`, `fold`.

`decide(state, command)` returns the events the command causes (possibly none) or a
`Rejected`; `evolve(state, event)` returns the next state; folding an aggregate's stored events
from `initial_state(aggregate)` gives its current state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from domain.commands import Command, Rejected
from domain.events import DomainEvent, TransitionRejected
from domain.lifecycle import extension, job, queue, schedule, system, task
from domain.lifecycle.machine import CompiledMachine, MachineSpec, table_rows


@dataclass(frozen=True)
class Lifecycle:
    """The pure functions and the machine of one aggregate kind."""

    machine: CompiledMachine[Any, Any]
    initial: Callable[[], Any]
    decide: Callable[[Any, Any], list[DomainEvent] | Rejected]
    evolve: Callable[[Any, DomainEvent], Any]

    @property
    def spec(self) -> MachineSpec:
        return self.machine.spec


LIFECYCLES: Final[dict[str, Lifecycle]] = {
    "job": Lifecycle(job.MACHINE, job.JobState, job.decide, job.evolve),
    "task": Lifecycle(task.MACHINE, task.TaskState, task.decide, task.evolve),
    "extension": Lifecycle(
        extension.MACHINE, extension.ExtensionState, extension.decide, extension.evolve
    ),
    "service": Lifecycle(
        system.SERVICE, system.ServiceState, system.decide_service, system.evolve_service
    ),
    "brain": Lifecycle(system.BRAIN, system.BrainState, system.decide_brain, system.evolve_brain),
    "handoff": Lifecycle(
        system.HANDOFF, system.HandoffState, system.decide_handoff, system.evolve_handoff
    ),
    "schedule": Lifecycle(
        schedule.MACHINE, schedule.ScheduleState, schedule.decide, schedule.evolve
    ),
    "queue": Lifecycle(queue.MACHINE, queue.QueueState, queue.decide, queue.evolve),
}


def lifecycle(aggregate: str) -> Lifecycle:
    """The lifecycle of an aggregate kind; a `KeyError` names the known kinds."""
    try:
        return LIFECYCLES[aggregate]
    except KeyError:
        raise KeyError(f"unknown aggregate {aggregate!r}; known: {', '.join(LIFECYCLES)}") from None


def initial_state(aggregate: str) -> Any:
    return lifecycle(aggregate).initial()


def decide(aggregate: str, state: Any, command: Command) -> list[DomainEvent] | Rejected:
    """Decide `command` against `state` of an `aggregate` kind."""
    if command.aggregate != aggregate:
        raise TypeError(
            f"{command.type_name} is a {command.aggregate} command, not a {aggregate} one"
        )
    return lifecycle(aggregate).decide(state, command)


def evolve(aggregate: str, state: Any, event: DomainEvent) -> Any:
    return lifecycle(aggregate).evolve(state, event)


def fold(aggregate: str, events: Iterable[DomainEvent]) -> Any:
    """The state after all `events`, from the initial state."""
    life = lifecycle(aggregate)
    state = life.initial()
    for event in events:
        state = life.evolve(state, event)
    return state


def rejection_event(rejected: Rejected) -> TransitionRejected:
    """The audit record of a rejected command."""
    return TransitionRejected(
        from_state=rejected.from_state,
        attempted=rejected.attempted,
        reason=rejected.reason,
        detail=rejected.detail,
    )


__all__ = [
    "LIFECYCLES",
    "Lifecycle",
    "Rejected",
    "decide",
    "evolve",
    "fold",
    "initial_state",
    "lifecycle",
    "rejection_event",
    "table_rows",
]
