"""Service health (up ↔ down), Brains (pending → active → draining → shutdown) and handoffs
(requested → draining → completed | aborted, with a fencing generation that only grows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from domain.commands import (
    AbortHandoff,
    ActivateBrain,
    CompleteHandoff,
    DrainBrain,
    Rejected,
    ReportServiceHealth,
    RequestHandoff,
    ResumeBrain,
    ShutDownBrain,
    StartBrain,
    StartHandoffDrain,
)
from domain.events import (
    BrainActivated,
    BrainDrainStarted,
    BrainResumed,
    BrainShutDown,
    BrainStarted,
    DomainEvent,
    HandoffAborted,
    HandoffCompleted,
    HandoffDrainStarted,
    HandoffRequested,
    ServiceDown,
    ServiceUp,
    TransitionRejected,
)
from domain.lifecycle.machine import CompiledMachine, MachineSpec, t
from domain.lifecycle.simple import bump, fire_one

SERVICE_SPEC: Final = MachineSpec(
    name="service",
    states=("new", "up", "down"),
    initial="new",
    terminal=frozenset(),
    transitions=(
        t("up", ("new", "down"), "up", "ServiceUp"),
        t("down", "up", "down", "ServiceDown"),
    ),
)
BRAIN_SPEC: Final = MachineSpec(
    name="brain",
    states=("new", "pending", "active", "draining", "shutdown"),
    initial="new",
    terminal=frozenset({"shutdown"}),
    transitions=(
        t("start", "new", "pending", "BrainStarted"),
        t("activate", "pending", "active", "BrainActivated", "newer_generation"),
        t("drain", "active", "draining", "BrainDrainStarted"),
        t("resume", "draining", "active", "BrainResumed"),
        t("shut_down", ("pending", "active", "draining"), "shutdown", "BrainShutDown"),
    ),
    guards={"newer_generation": "the fencing generation only grows"},
)
HANDOFF_SPEC: Final = MachineSpec(
    name="handoff",
    states=("new", "requested", "draining", "completed", "aborted"),
    initial="new",
    terminal=frozenset({"completed", "aborted"}),
    transitions=(
        t("request", "new", "requested", "HandoffRequested"),
        t("drain", "requested", "draining", "HandoffDrainStarted"),
        t("complete", "draining", "completed", "HandoffCompleted", "same_generation"),
        t("abort", ("requested", "draining"), "aborted", "HandoffAborted"),
    ),
    guards={"same_generation": "completes with the generation that was requested"},
)


@dataclass(frozen=True, slots=True)
class ServiceState:
    status: str = "new"
    version: int = 0


@dataclass(frozen=True, slots=True)
class BrainState:
    status: str = "new"
    version: int = 0
    generation: int = 0


@dataclass(frozen=True, slots=True)
class HandoffState:
    status: str = "new"
    version: int = 0
    generation: int = 0


SERVICE: Final[CompiledMachine[ServiceState, Any]] = CompiledMachine(SERVICE_SPEC, {})
BRAIN: Final[CompiledMachine[BrainState, Any]] = CompiledMachine(
    BRAIN_SPEC, {"newer_generation": lambda s, c: c.generation > s.generation}
)
HANDOFF: Final[CompiledMachine[HandoffState, Any]] = CompiledMachine(
    HANDOFF_SPEC, {"same_generation": lambda s, c: c.generation == s.generation}
)


def decide_service(state: ServiceState, cmd: ReportServiceHealth) -> list[DomainEvent] | Rejected:
    """A health report changes the record only when up/down flips."""
    if cmd.up:
        up = ServiceUp(service=cmd.service, instance=cmd.instance, version=cmd.version)
        return fire_one(SERVICE, state, "up", cmd, lambda _s, _c: up, ("up",))
    down = ServiceDown(reason=cmd.reason or "no heartbeat", last_seen=cmd.last_seen)
    return fire_one(SERVICE, state, "down", cmd, lambda _s, _c: down, ("down",))


def evolve_service(state: ServiceState, event: DomainEvent) -> ServiceState:
    status = {ServiceUp: "up", ServiceDown: "down"}.get(type(event))
    if status is None and not isinstance(event, TransitionRejected):
        raise TypeError(f"{type(event).__name__} is not a service event")
    return bump(state, status=status or state.status)


BrainCommand = StartBrain | ActivateBrain | DrainBrain | ResumeBrain | ShutDownBrain


def decide_brain(state: BrainState, cmd: BrainCommand) -> list[DomainEvent] | Rejected:
    """Brain role changes for blue-green deployment."""
    if isinstance(cmd, StartBrain):
        ev: DomainEvent = BrainStarted(role=cmd.role, version=cmd.version)
        return fire_one(BRAIN, state, "start", cmd, lambda _s, _c: ev)
    if isinstance(cmd, ActivateBrain):
        ev = BrainActivated(generation=cmd.generation, fresh_start=cmd.fresh_start)
        return fire_one(BRAIN, state, "activate", cmd, lambda _s, _c: ev)
    if isinstance(cmd, DrainBrain):
        ev = BrainDrainStarted(handoff_id=cmd.handoff_id)
        return fire_one(BRAIN, state, "drain", cmd, lambda _s, _c: ev, ("draining",))
    if isinstance(cmd, ResumeBrain):
        ev = BrainResumed(handoff_id=cmd.handoff_id, reason=cmd.reason)
        return fire_one(BRAIN, state, "resume", cmd, lambda _s, _c: ev, ("active",))
    ev = BrainShutDown(reason=cmd.reason)
    return fire_one(BRAIN, state, "shut_down", cmd, lambda _s, _c: ev, ("shutdown",))


def evolve_brain(state: BrainState, event: DomainEvent) -> BrainState:
    if isinstance(event, BrainActivated):
        return bump(state, status="active", generation=event.generation)
    status = {
        BrainStarted: "pending",
        BrainDrainStarted: "draining",
        BrainResumed: "active",
        BrainShutDown: "shutdown",
    }.get(type(event))
    if status is None and not isinstance(event, TransitionRejected):
        raise TypeError(f"{type(event).__name__} is not a brain event")
    return bump(state, status=status or state.status)


HandoffCommand = RequestHandoff | StartHandoffDrain | CompleteHandoff | AbortHandoff


def decide_handoff(state: HandoffState, cmd: HandoffCommand) -> list[DomainEvent] | Rejected:
    """Steps of one blue-green handoff."""
    if isinstance(cmd, RequestHandoff):
        ev: DomainEvent = HandoffRequested(
            to_instance=cmd.to_instance,
            to_version=cmd.to_version,
            from_instance=cmd.from_instance,
            generation=cmd.generation,
        )
        return fire_one(HANDOFF, state, "request", cmd, lambda _s, _c: ev)
    if isinstance(cmd, StartHandoffDrain):
        ev = HandoffDrainStarted(from_instance=cmd.from_instance, from_version=cmd.from_version)
        return fire_one(HANDOFF, state, "drain", cmd, lambda _s, _c: ev, ("draining",))
    if isinstance(cmd, CompleteHandoff):
        ev = HandoffCompleted(generation=cmd.generation)
        return fire_one(HANDOFF, state, "complete", cmd, lambda _s, _c: ev, ("completed",))
    ev = HandoffAborted(reason=cmd.reason)
    return fire_one(HANDOFF, state, "abort", cmd, lambda _s, _c: ev, ("aborted",))


def evolve_handoff(state: HandoffState, event: DomainEvent) -> HandoffState:
    if isinstance(event, HandoffRequested):
        return bump(state, status="requested", generation=event.generation)
    status = {
        HandoffDrainStarted: "draining",
        HandoffCompleted: "completed",
        HandoffAborted: "aborted",
    }.get(type(event))
    if status is None and not isinstance(event, TransitionRejected):
        raise TypeError(f"{type(event).__name__} is not a handoff event")
    return bump(state, status=status or state.status)
