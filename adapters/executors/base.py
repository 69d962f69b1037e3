"""What every job executor returns, and how it reports progress.

An executor runs one job's payload and returns an `Execution`; job-level failures (a command
that exits non-zero, an HTTP 500 after retries, an API error) are an `Execution` with
`ok=False`, never an exception. Cancellation arrives as `asyncio.CancelledError` in the
executor's task: the executor must stop its work (kill the subprocess, abort the request, stop
the agent loop) and re-raise it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from domain.events import DomainEvent
from domain.wire_output import OutputStream
from domain.wire_steps import StepKind

Progress = Callable[[str], Awaitable[None]]
Output = Callable[[OutputStream, str], None]
"""Live output as it comes (model text, a command's stdout/stderr): a plain call that only
buffers, so an executor calls it from anywhere without waiting (DESIGN §10)."""


async def no_progress(_text: str) -> None:
    """A `Progress` that reports nothing."""


def no_output(_stream: OutputStream, _text: str) -> None:
    """An `Output` that goes nowhere."""


@dataclass(frozen=True)
class Execution:
    ok: bool
    result: Any = None  # JSON-serialisable
    error: str | None = None
    reason: str | None = None  # a failure's reason beyond `error` (e.g. "budget_exceeded")
    details: dict[str, Any] | None = None  # what goes with the reason (the budget passed)
    waiting: bool = False  # an agent job stopped to wait for an approval: not finished


class StepJournal(Protocol):
    """Where an agent job's steps are recorded, and read back on resume (DESIGN §10)."""

    async def recorded(self) -> Sequence[DomainEvent]:
        """The job's recorded step events (model calls, tool calls and returns, approvals),
        in order, once every step it published is stored."""
        ...

    async def record(self, kind: StepKind, step: int, **fields: Any) -> None:
        """Record one step; returns once it is stored."""
        ...


class NoJournal:
    """Records nothing and has nothing recorded: a fresh conversation every time (task
    runners, tests)."""

    async def recorded(self) -> Sequence[DomainEvent]:
        return ()

    async def record(self, kind: StepKind, step: int, **fields: Any) -> None:
        return None


NO_JOURNAL: StepJournal = NoJournal()
