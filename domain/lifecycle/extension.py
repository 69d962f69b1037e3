"""The extension lifecycle: online ↔ offline → deregistered (a re-announce brings it back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from domain.commands import (
    AnnounceExtension,
    DeregisterExtension,
    MarkExtensionOffline,
    RecordHeartbeat,
    RecordTools,
    Rejected,
)
from domain.events import (
    DomainEvent,
    ExtensionAnnounced,
    ExtensionCameOnline,
    ExtensionDeregistered,
    ExtensionToolsDiscovered,
    ExtensionWentOffline,
    TransitionRejected,
)
from domain.lifecycle.machine import CompiledMachine, MachineSpec, t
from domain.lifecycle.simple import bump, fire_one

SPEC: Final = MachineSpec(
    name="extension",
    states=("new", "online", "offline", "deregistered"),
    initial="new",
    terminal=frozenset(),
    transitions=(
        t("announce", ("new", "deregistered"), "online", "ExtensionAnnounced"),
        t("update", "online", None, "ExtensionAnnounced", "changed"),
        t("come_online", "offline", "online", "ExtensionCameOnline"),
        t("go_offline", "online", "offline", "ExtensionWentOffline"),
        t("discover_tools", ("online", "offline"), None, "ExtensionToolsDiscovered", "new_tools"),
        t("deregister", ("online", "offline"), "deregistered", "ExtensionDeregistered"),
    ),
    guards={
        "changed": "the announce brings another version, URL, description or tool set",
        "new_tools": "the discovered tool set differs from the recorded one",
    },
)


@dataclass(frozen=True, slots=True)
class ExtensionState:
    status: str = "new"
    version: int = 0
    name: str = ""
    ext_version: str = ""
    mcp_url: str = ""
    description: str = ""
    tools: tuple[dict[str, Any], ...] = ()


ExtensionCommand = (
    AnnounceExtension | RecordHeartbeat | MarkExtensionOffline | RecordTools | DeregisterExtension
)


def _changed(s: ExtensionState, c: AnnounceExtension) -> bool:
    same = (c.name, c.version, c.mcp_url, c.description) == (
        s.name,
        s.ext_version,
        s.mcp_url,
        s.description,
    )
    return not same or (c.tools is not None and tuple(c.tools) != s.tools)


MACHINE: Final[CompiledMachine[ExtensionState, Any]] = CompiledMachine(
    SPEC,
    {"changed": _changed, "new_tools": lambda s, c: tuple(c.tools) != s.tools},
)


def _announced(s: ExtensionState, c: AnnounceExtension) -> DomainEvent:
    tools = list(c.tools) if c.tools is not None else list(s.tools)
    return ExtensionAnnounced(
        name=c.name, version=c.version, description=c.description, mcp_url=c.mcp_url, tools=tools
    )


def decide(state: ExtensionState, cmd: ExtensionCommand) -> list[DomainEvent] | Rejected:
    """What happens when `cmd` meets an extension in `state`."""
    if isinstance(cmd, AnnounceExtension):
        return _decide_announce(state, cmd)
    if isinstance(cmd, RecordHeartbeat):
        return fire_one(MACHINE, state, "come_online", cmd, _came_online, ("online",))
    if isinstance(cmd, MarkExtensionOffline):
        return fire_one(MACHINE, state, "go_offline", cmd, _went_offline, ("offline",))
    if isinstance(cmd, RecordTools):
        return fire_one(MACHINE, state, "discover_tools", cmd, _discovered, ("online", "offline"))
    return fire_one(MACHINE, state, "deregister", cmd, _deregistered, ("deregistered",))


def _decide_announce(state: ExtensionState, cmd: AnnounceExtension) -> list[DomainEvent] | Rejected:
    events: list[DomainEvent] = []
    if MACHINE.fire(state.status, "come_online", state, cmd):
        events.append(ExtensionCameOnline())
        state = evolve(state, events[-1])
    if MACHINE.fire(state.status, "announce", state, cmd) or MACHINE.fire(
        state.status, "update", state, cmd
    ):
        events.append(_announced(state, cmd))
    return events  # an unchanged re-announce is the upstream keepalive: nothing to record


def _came_online(_s: ExtensionState, _c: Any) -> DomainEvent:
    return ExtensionCameOnline()


def _went_offline(_s: ExtensionState, c: MarkExtensionOffline) -> DomainEvent:
    return ExtensionWentOffline(last_seen=c.last_seen, missed_heartbeats=c.missed_heartbeats)


def _discovered(_s: ExtensionState, c: RecordTools) -> DomainEvent:
    return ExtensionToolsDiscovered(tools=list(c.tools))


def _deregistered(_s: ExtensionState, c: DeregisterExtension) -> DomainEvent:
    return ExtensionDeregistered(reason=c.reason)


def evolve(state: ExtensionState, event: DomainEvent) -> ExtensionState:
    """The extension state after `event`."""
    if isinstance(event, ExtensionAnnounced):
        return bump(
            state,
            status="online",
            name=event.name,
            ext_version=event.version,
            mcp_url=event.mcp_url,
            description=event.description,
            tools=tuple(event.tools),
        )
    if isinstance(event, ExtensionToolsDiscovered):
        return bump(state, tools=tuple(event.tools))
    status = {
        ExtensionCameOnline: "online",
        ExtensionWentOffline: "offline",
        ExtensionDeregistered: "deregistered",
    }.get(type(event))
    if status is None and not isinstance(event, TransitionRejected):
        raise TypeError(f"{type(event).__name__} is not an extension event")
    return bump(state, status=status or state.status)
