"""What a worker tells the Brain about one job: status and result messages (DESIGN §3)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from adapters.nats.job_queue import JobQueue, QueueFull
from domain.wire import ResultMessage, StatusMessage, WorkerStatus

log = logging.getLogger("baker.worker")


class Reporter:
    """Publishes a job's status and result; each message has its own `Nats-Msg-Id`, so a
    retried publish is stored once. When `BAKER_JOBS` is full, a report waits for room (the
    Brain's ingest frees it) for up to `full_retry_for` seconds, then raises `QueueFull`."""

    def __init__(
        self,
        queue: JobQueue,
        job_id: str,
        worker_id: str,
        attempt: int,
        headers: dict[str, str],
        trace_id: str | None,
        full_retry_for: float = 120.0,
    ) -> None:
        self._queue = queue
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

    async def status(
        self, status: WorkerStatus, progress: str | None = None, error: str | None = None
    ) -> None:
        msg = StatusMessage(
            id=self.job_id,
            status=status,
            progress=progress,
            worker_id=self.worker_id,
            attempt=self.attempt,
            timestamp=datetime.now(UTC),
            error=error,
            trace_id=self._trace_id,
        )
        msg_id = self._msg_id()
        await self._send(lambda: self._queue.report_status(msg, self._headers, msg_id))

    async def _send(self, publish: Callable[[], Awaitable[int]]) -> None:
        deadline = time.monotonic() + self._full_retry_for
        delay = 0.05
        while True:
            try:
                await publish()
                return
            except QueueFull:
                if time.monotonic() >= deadline:
                    raise
                if delay == 0.05:
                    log.warning(
                        "job queue full; waiting for room to report", extra={"job_id": self.job_id}
                    )
                await asyncio.sleep(delay)  # back-off between tries of the same message
                delay = min(delay * 2, 2.0)

    async def started(self) -> None:
        """`received` then `running`, pipelined: both are on the wire before either ack."""
        await asyncio.gather(self.status("received"), self.status("running"))

    async def progress(self, text: str) -> None:
        await self.status("running", progress=text[:8192])

    async def finish(
        self,
        status: WorkerStatus,
        *,
        result: Any = None,
        error: str | None = None,
        duration_ms: int | None = None,
    ) -> None:
        """The result message, then the terminal status (the Brain takes the first it sees;
        the result comes first so the terminal event carries it)."""
        assert status in ("completed", "failed", "cancelled")
        result_msg = ResultMessage(
            id=self.job_id,
            status=status,  # type: ignore[arg-type]
            result=result,
            error=error,
            duration_ms=duration_ms,
            worker_id=self.worker_id,
            attempt=self.attempt,
            trace_id=self._trace_id,
        )
        # Pipelined, in this order on the wire; both must be stored before the job is acked.
        msg_id = self._msg_id()
        await asyncio.gather(
            self._send(lambda: self._queue.report_result(result_msg, self._headers, msg_id)),
            self.status(status, error=error),
        )
