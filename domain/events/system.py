"""Events of extensions, service health, Brains and Brain handoffs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from domain.events.base import DomainEvent


class ExtensionEvent(DomainEvent):
    aggregate: ClassVar[str] = "extension"


class ExtensionAnnounced(ExtensionEvent):
    """An extension is new, or came back with another version or tool set."""

    name: str
    version: str
    description: str = ""
    mcp_url: str
    tools: list[dict[str, Any]] = Field(default_factory=list)


class ExtensionToolsDiscovered(ExtensionEvent):
    tools: list[dict[str, Any]]


class ExtensionWentOffline(ExtensionEvent):
    last_seen: datetime | None = None
    missed_heartbeats: int = 3


class ExtensionCameOnline(ExtensionEvent):
    pass


class ExtensionDeregistered(ExtensionEvent):
    reason: str | None = None


class ServiceEvent(DomainEvent):
    aggregate: ClassVar[str] = "service"


class ServiceUp(ServiceEvent):
    service: str
    instance: str
    version: str | None = None


class ServiceDown(ServiceEvent):
    reason: str
    last_seen: datetime | None = None


class BrainEvent(DomainEvent):
    aggregate: ClassVar[str] = "brain"


class BrainStarted(BrainEvent):
    role: Literal["active", "pending"]
    version: str


class BrainActivated(BrainEvent):
    generation: int
    fresh_start: bool = False


class BrainDrainStarted(BrainEvent):
    handoff_id: str


class BrainResumed(BrainEvent):
    """A draining Brain went back to active because its handoff was aborted."""

    handoff_id: str
    reason: str


class BrainShutDown(BrainEvent):
    reason: str


class HandoffEvent(DomainEvent):
    aggregate: ClassVar[str] = "handoff"


class HandoffRequested(HandoffEvent):
    to_instance: str
    to_version: str
    from_instance: str | None = None
    generation: int


class HandoffDrainStarted(HandoffEvent):
    from_instance: str
    from_version: str | None = None


class HandoffCompleted(HandoffEvent):
    generation: int


class HandoffAborted(HandoffEvent):
    reason: str


SYSTEM_EVENTS: tuple[type[DomainEvent], ...] = (
    ExtensionAnnounced,
    ExtensionToolsDiscovered,
    ExtensionWentOffline,
    ExtensionCameOnline,
    ExtensionDeregistered,
    ServiceUp,
    ServiceDown,
    BrainStarted,
    BrainActivated,
    BrainDrainStarted,
    BrainResumed,
    BrainShutDown,
    HandoffRequested,
    HandoffDrainStarted,
    HandoffCompleted,
    HandoffAborted,
)
