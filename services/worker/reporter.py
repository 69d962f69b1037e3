"""What a worker tells the Brain about one job: status and result messages (DESIGN §3)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from adapters.nats.job_queue import JobQueue
from domain.wire import ResultMessage, StatusMessage, WorkerStatus


class Reporter:
    """Publishes a job's status and result; each message has its own `Nats-Msg-Id`, so a
    retried publish is stored once."""

    def __init__(
        self,
        queue: JobQueue,
        job_id: str,
        worker_id: str,
        attempt: int,
        headers: dict[str, str],
        trace_id: str | None,
    ) -> None:
        self._queue = queue
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
        await self._queue.report_status(msg, self._headers, self._msg_id())

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
        await asyncio.gather(
            self._queue.report_result(result_msg, self._headers, self._msg_id()),
            self.status(status, error=error),
        )
