"""Events shared by every aggregate."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from domain.events.base import DomainEvent


class TransitionRejected(DomainEvent):
    """A command the lifecycle refused; it changes no state but stays in the audit log."""

    from_state: str
    attempted: str
    reason: str
    detail: dict[str, Any] = Field(default_factory=dict)
