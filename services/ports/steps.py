"""The port a resuming agent job reads its recorded steps through (DESIGN §10)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from domain.events import DomainEvent


class StepsNotIngested(Exception):
    """A job's step messages are still waiting in the queue after the wait allowed."""


class StepHistory(Protocol):
    async def steps_queued(self, job_id: str) -> bool:
        """Whether any step message of the job still waits in the queue, not yet ingested."""
        ...

    async def recorded_steps(self, job_id: str) -> Sequence[DomainEvent]:
        """The job's step and approval events as recorded, in order."""
        ...
