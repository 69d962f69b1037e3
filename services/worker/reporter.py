"""What a worker tells the Brain about one job: status and result messages (DESIGN §3).

Progress, errors and results leave with every value that looks like a credential masked
(DESIGN §12, `domain.redaction`): they are stored in `BAKER_JOBS` and in the job's events."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from adapters.clock import SYSTEM_CLOCK
from domain.queue import QueueFull, Report
from domain.redaction import redact_text, redact_value
from domain.wire import FinalStatus, WorkerStatus, encode_result, encode_status
from services.ports.clock import Clock
from services.ports.jobs import ReportSink

log = logging.getLogger("baker.worker")


class Reporter:
    """Publishes a job's status and result; each message has its own `Nats-Msg-Id`, so a
    retried publish is stored once. When `BAKER_JOBS` is full, a report waits for room (the
    Brain's ingest frees it) for up to `full_retry_for` seconds, then raises `QueueFull`."""

    def __init__(
        self,
        sink: ReportSink,
        job_id: str,
        worker_id: str,
        attempt: int,
        headers: dict[str, str],
        trace_id: str | None,
        full_retry_for: float = 120.0,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._full_retry_for = full_retry_for
        self.job_id = job_id
        self.worker_id = worker_id
        self.attempt = attempt
        self._headers = headers
        self._trace_id = trace_id
        self._sent = 0

    def _msg_id(self) -> str:
        self._sent += 1
        return f"{self.job_id}:{self.attempt}:{self.worker_id}:{self._sent}"

    def _status(
        self, status: WorkerStatus, progress: str | None = None, error: str | None = None
    ) -> Report:
        payload = encode_status(
            self.job_id,
            status,
            progress=None if progress is None else redact_text(progress),
            worker_id=self.worker_id,
            attempt=self.attempt,
            timestamp=datetime.now(UTC),
            error=None if error is None else redact_text(error),
            trace_id=self._trace_id,
        )
        return Report("status", self.job_id, status, payload, self._headers, self._msg_id())

    async def _send(self, reports: list[Report]) -> None:
        """Publish in order, pipelined; while the stream is full, wait for room (each retry
        carries the same message ids, so what was already stored is not stored again)."""
        deadline = self._clock.now() + self._full_retry_for
        delay = 0.05
        while True:
            try:
                await self._sink.report_all(reports)
                return
            except QueueFull:
                if self._clock.now() >= deadline:
                    raise
                if delay == 0.05:
                    log.warning(
                        "job queue full; waiting for room to report", extra={"job_id": self.job_id}
                    )
                await self._clock.sleep(delay)  # back-off between tries of the same messages
                delay = min(delay * 2, 2.0)

    async def status(
        self, status: WorkerStatus, progress: str | None = None, error: str | None = None
    ) -> None:
        await self._send([self._status(status, progress, error)])

    async def started(self) -> None:
        """`received` then `running`, pipelined: both are on the wire before either ack."""
        await self._send([self._status("received"), self._status("running")])

    async def step(self, step: int, payload: bytes) -> None:
        """One step message of an agent job. Its message id is the job's and the step's, so
        the same step sent again (a retry, or a resumed attempt) is stored once. `payload` is
        already redacted (`WorkerJournal.record`)."""
        msg_id = f"{self.job_id}:step:{step}"
        await self._send([Report("step", self.job_id, "running", payload, self._headers, msg_id)])

    async def progress(self, text: str) -> None:
        # masked before it is cut, so no secret is cut to a piece that no longer looks like one
        await self.status("running", progress=redact_text(text)[:8192])

    async def finish(
        self,
        status: FinalStatus,
        *,
        result: Any = None,
        error: str | None = None,
        duration_ms: int | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """The result message alone, stored before the job is acked: it carries the final
        status, and a terminal status after it would be a duplicate that the Brain fetches,
        decides as a no-op and acks (DESIGN §3 lets a worker send either; a Brain takes the
        first it sees)."""
        payload = encode_result(
            self.job_id,
            status,
            result=redact_value(result),
            error=None if error is None else redact_text(error),
            duration_ms=duration_ms,
            worker_id=self.worker_id,
            attempt=self.attempt,
            trace_id=self._trace_id,
            reason=reason,
            budget=details if reason == "budget_exceeded" else None,
        )
        result_msg = Report("result", self.job_id, status, payload, self._headers, self._msg_id())
        await self._send([result_msg])
