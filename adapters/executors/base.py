"""What every job executor returns, and how it reports progress.

An executor runs one job's payload and returns an `Execution`; job-level failures (a command
that exits non-zero, an HTTP 500 after retries, an API error) are an `Execution` with
`ok=False`, never an exception. Cancellation arrives as `asyncio.CancelledError` in the
executor's task: the executor must stop its work (kill the subprocess, abort the request, stop
the agent loop) and re-raise it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Progress = Callable[[str], Awaitable[None]]


async def no_progress(_text: str) -> None:
    """A `Progress` that reports nothing."""


@dataclass(frozen=True)
class Execution:
    ok: bool
    result: Any = None  # JSON-serialisable
    error: str | None = None
