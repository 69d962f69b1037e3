"""Lifecycle machines as data, validated and compiled by `transitions`.

Each aggregate kind declares its states and transition table as plain data. `transitions`
builds a real `Machine` from it (which checks that every state and trigger is coherent), and
the machine's own event/transition structure is compiled into a dict so that a decision is a
lookup plus guard calls: cheap enough for the ingest hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from transitions import Machine

S = TypeVar("S")
C = TypeVar("C")
Guard = Callable[[Any, Any], bool]


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of a transition table; `dest=None` means an internal transition (stay put)."""

    trigger: str
    sources: tuple[str, ...]
    dest: str | None
    event: str
    guard: str | None = None


@dataclass(frozen=True)
class MachineSpec:
    """States and transitions of one aggregate kind, as data."""

    name: str
    states: tuple[str, ...]
    initial: str
    terminal: frozenset[str]
    transitions: tuple[Transition, ...]
    guards: Mapping[str, str] = field(default_factory=dict)  # guard name -> description


def t(
    trigger: str, sources: str | tuple[str, ...], dest: str | None, event: str, guard: str = ""
) -> Transition:
    """Shorthand for a table row."""
    srcs = (sources,) if isinstance(sources, str) else sources
    return Transition(trigger, srcs, dest, event, guard or None)


class CompiledMachine(Generic[S, C]):
    """A `transitions.Machine` built from a spec, plus its compiled lookup table."""

    def __init__(self, spec: MachineSpec, guards: Mapping[str, Callable[[S, C], bool]]) -> None:
        _check_states(spec)
        missing = {tr.guard for tr in spec.transitions if tr.guard} - set(guards)
        if missing:
            raise ValueError(f"{spec.name}: guards without a function: {sorted(missing)}")
        self.spec = spec
        self.guards = guards
        self.machine = build_machine(spec, model=None)
        self._table = _compile(self.machine)

    def candidates(self, state: str, trigger: str) -> tuple[tuple[str, str | None], ...]:
        """(dest, guard) pairs the machine allows for `trigger` in `state`, in table order."""
        return self._table.get((state, trigger), ())

    def fire(self, state: str, trigger: str, subject: S, command: C) -> str | None:
        """The state `trigger` leads to from `state`, or None when no transition allows it."""
        for dest, guard in self._table.get((state, trigger), ()):
            if guard is None or self.guards[guard](subject, command):
                return dest
        return None

    def triggers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(tr.trigger for tr in self.spec.transitions))


def build_machine(spec: MachineSpec, model: Any) -> Machine:
    """The real `transitions` machine for a spec; guards are the model's methods by name."""
    return Machine(
        model=model,
        states=list(spec.states),
        transitions=[
            {
                "trigger": tr.trigger,
                "source": list(tr.sources),
                "dest": tr.dest,
                "conditions": [tr.guard] if tr.guard else [],
            }
            for tr in spec.transitions
        ],
        initial=spec.initial,
        auto_transitions=False,
        ignore_invalid_triggers=True,
    )


def _check_states(spec: MachineSpec) -> None:
    named = {spec.initial, *spec.terminal}
    for tr in spec.transitions:
        named.update(tr.sources)
        if tr.dest is not None:
            named.add(tr.dest)
    unknown = named - set(spec.states)
    if unknown:
        raise ValueError(f"{spec.name}: transitions name unknown states {sorted(unknown)}")


def _compile(machine: Machine) -> dict[tuple[str, str], tuple[tuple[str, str | None], ...]]:
    table: dict[tuple[str, str], tuple[tuple[str, str | None], ...]] = {}
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            rows: list[tuple[str, str | None]] = []
            for tr in transitions:
                conds = [c.func for c in tr.conditions]
                guard = conds[0] if conds else None
                if len(conds) > 1 or not (guard is None or isinstance(guard, str)):
                    raise ValueError(f"{trigger}: one named guard per transition")
                rows.append((tr.dest or source, guard))
            table[(source, trigger)] = tuple(rows)
    return table


def table_rows(spec: MachineSpec) -> list[tuple[str, str, str, str, str]]:
    """(trigger, from, to, guard, event) rows for printing."""
    return [
        (tr.trigger, " | ".join(tr.sources), tr.dest or "(same)", tr.guard or "", tr.event)
        for tr in spec.transitions
    ]
