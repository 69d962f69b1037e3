"""Events of the job queue as a whole (aggregate `queue`, DESIGN §11): paused and resumed by
an operator, who and why."""

from __future__ import annotations

from typing import ClassVar

from domain.events.base import DomainEvent


class QueueEvent(DomainEvent):
    aggregate: ClassVar[str] = "queue"


class QueuePaused(QueueEvent):
    """Workers take no new job until the queue is resumed; running jobs run to their end."""

    by: str | None = None
    reason: str | None = None


class QueueResumed(QueueEvent):
    """Workers take jobs again, highest priority first."""

    by: str | None = None
    reason: str | None = None


QUEUE_EVENTS: tuple[type[DomainEvent], ...] = (QueuePaused, QueueResumed)
