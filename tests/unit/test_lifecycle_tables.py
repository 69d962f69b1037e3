"""The compiled lookup agrees with the real `transitions` machine, for every machine."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from domain.lifecycle import LIFECYCLES
from domain.lifecycle.machine import CompiledMachine, MachineSpec, build_machine, t


class GuardModel:
    """A `transitions` model whose guard methods return preset answers."""

    def __init__(self, answers: dict[str, bool]) -> None:
        for name, value in answers.items():
            setattr(self, name, lambda value=value: value)


def cases(spec: MachineSpec) -> list[tuple[str, str, dict[str, bool]]]:
    """Every state and trigger with every combination of the guards that can matter there
    (those of the trigger's transitions from that state; the others answer False): the whole
    product over all guards grows as 2^guards and no longer ends in reasonable time."""
    every = sorted({tr.guard for tr in spec.transitions if tr.guard})
    triggers = sorted({tr.trigger for tr in spec.transitions})
    out = []
    for state, trig in itertools.product(spec.states, triggers):
        guards = sorted({
            tr.guard for tr in spec.transitions
            if tr.guard and tr.trigger == trig and state in tr.sources
        })  # fmt: skip
        for values in itertools.product([False, True], repeat=len(guards)):
            answers = dict.fromkeys(every, False) | dict(zip(guards, values, strict=True))
            out.append((state, trig, answers))
    return out


@pytest.mark.parametrize("aggregate", sorted(LIFECYCLES))
def test_compiled_table_matches_the_transitions_machine(aggregate: str) -> None:
    spec = LIFECYCLES[aggregate].spec
    for state, trigger, answers in cases(spec):
        model = GuardModel(answers)
        machine = build_machine(spec, model=model)
        machine.set_state(state, model)
        fired = model.trigger(trigger)  # type: ignore[attr-defined]
        compiled: CompiledMachine[Any, Any] = CompiledMachine(
            spec, {g: (lambda _s, _c, v=v: v) for g, v in answers.items()}
        )
        dest = compiled.fire(state, trigger, None, None)
        assert (dest is not None) == fired, (state, trigger, answers)
        if fired:
            assert dest == model.state, (state, trigger, answers)  # type: ignore[attr-defined]


def test_a_table_with_an_unknown_state_is_refused_by_transitions() -> None:
    spec = MachineSpec("bad", ("a", "b"), "a", frozenset(), (t("go", "a", "nowhere", "E"),))
    with pytest.raises(ValueError, match="nowhere"):
        CompiledMachine(spec, {})


def test_a_guard_without_a_function_is_refused() -> None:
    spec = MachineSpec("bad", ("a", "b"), "a", frozenset(), (t("go", "a", "b", "E", "g"),))
    with pytest.raises(ValueError, match="guards without a function"):
        CompiledMachine(spec, {})


@pytest.mark.parametrize("aggregate", sorted(LIFECYCLES))
def test_terminal_states_have_no_way_out(aggregate: str) -> None:
    spec = LIFECYCLES[aggregate].spec
    for tr in spec.transitions:
        for source in tr.sources:
            if source in spec.terminal:
                assert tr.dest is None, f"{aggregate}: {tr.trigger} leaves terminal {source}"
