"""Shared decision step for lifecycles where one command maps to one trigger."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from domain.commands import Command, Rejected
from domain.events import DomainEvent
from domain.lifecycle.machine import CompiledMachine


class Versioned(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def version(self) -> int: ...


S = TypeVar("S", bound=Versioned)


def fire_one(
    machine: CompiledMachine[S, Any],
    state: S,
    trigger: str,
    cmd: Command,
    make_event: Callable[[S, Any], DomainEvent],
    noop_in: Iterable[str] = (),
) -> list[DomainEvent] | Rejected:
    """One event if `trigger` is allowed, none if the command restates the current state,
    otherwise a rejection naming the illegal transition."""
    if machine.fire(state.status, trigger, state, cmd) is not None:
        return [make_event(state, cmd)]
    if state.status in noop_in:
        return []
    return reject(machine, state, trigger, cmd)


def reject(machine: CompiledMachine[S, Any], state: S, trigger: str, cmd: Command) -> Rejected:
    """A rejection with a reason a human can act on."""
    if state.status == machine.spec.initial:
        reason = f"no such {machine.spec.name}"
    elif state.status in machine.spec.terminal:
        reason = f"{machine.spec.name} is already {state.status}; terminal states absorb"
    else:
        reason = f"illegal transition {state.status} -> {trigger}"
    return Rejected(state.status, trigger, reason, {"command": cmd.type_name})


def bump(state: S, **changes: Any) -> S:
    """`state` with `changes` applied and the version advanced by one."""
    return replace(state, version=state.version + 1, **changes)  # type: ignore[type-var]
