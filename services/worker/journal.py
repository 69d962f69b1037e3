"""An agent job's step journal on a worker: steps go out as step messages through the
job's `Reporter`, recorded steps come back from the `StepHistory` port.

A step's fields leave with every value that looks like a credential masked (DESIGN §12): the
running attempt keeps what the model said, a resumed one sees the masks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from domain.events import DomainEvent
from domain.redaction import redact_value
from domain.wire_steps import StepKind, encode_step
from services.ports.clock import Clock
from services.ports.steps import StepHistory, StepsNotIngested
from services.worker.reporter import Reporter


class WorkerJournal:
    def __init__(
        self,
        reporter: Reporter,
        history: StepHistory | None,
        reported: asyncio.Event,
        clock: Clock,
        wait_for: float = 60.0,
    ) -> None:
        self._reporter = reporter
        self._history = history
        self._clock = clock
        self._wait_for = wait_for
        self._reported = reported  # set once `received`/`running` are stored: steps follow them

    async def recorded(self) -> Sequence[DomainEvent]:
        """The job's recorded steps, once every step message an earlier attempt published is
        ingested (else a step still in the queue would be missed and repeated)."""
        if self._history is None:
            return ()
        job_id = self._reporter.job_id
        deadline = self._clock.now() + self._wait_for
        delay = 0.02
        while await self._history.steps_queued(job_id):
            if self._clock.now() >= deadline:
                raise StepsNotIngested(
                    f"step messages of {job_id} still wait in the queue after "
                    f"{self._wait_for:g} s (is the Brain's ingest running?)"
                )
            await self._clock.sleep(delay)  # back-off between looks at the queue
            delay = min(delay * 2, 1.0)
        return await self._history.recorded_steps(job_id)

    async def record(self, kind: StepKind, step: int, **fields: Any) -> None:
        await self._reported.wait()
        reporter = self._reporter
        payload = encode_step(
            reporter.job_id, reporter.attempt, step, kind, worker_id=reporter.worker_id,
            **redact_value(fields),
        )  # fmt: skip
        await reporter.step(step, payload)
