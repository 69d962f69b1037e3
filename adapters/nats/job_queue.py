"""The job queue on JetStream: dispatch, worker status and results, cancel signals.

Every publish waits for JetStream's acknowledgement and carries a `Nats-Msg-Id`, so retries
after silence never queue a job or a status twice. Implements the Brain's `JobQueue`, the
worker's `ReportSink` and `CancelSignals` ports (`services.ports.jobs`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from adapters.nats.requests import (
    JetStreamPublisher,
    Publish,
    PublishRefused,
    PublishUnavailable,
)
from adapters.nats.streams import (
    CANCELS_PREFIX,
    CANCELS_STREAM,
    DISPATCH_SUBJECT,
    JOBS_STREAM,
    WORKERS_CONSUMER,
)
from domain.queue import (
    QueueFull,
    QueueUnavailable,
    Report,
    cancel_reason,
    cancel_signal,
    job_of_message,
)
from domain.wire import DispatchMessage

__all__ = ["JetStreamJobQueue", "QueueFull", "QueueUnavailable", "Report"]
MAX_MESSAGES_EXCEEDED = 10077  # discard-new stream at its message limit


class JetStreamJobQueue:
    def __init__(self, nc: NATS, *, request_timeout: float = 2.0, retry_for: float = 15.0):
        self._nc = nc
        self._js = nc.jetstream(timeout=request_timeout)
        self.publisher = JetStreamPublisher(
            nc, request_timeout=request_timeout, retry_for=retry_for
        )

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> int:
        with _queue_errors():
            seq, _ = await self.publisher.publish(subject, payload, headers)
        return seq

    async def dispatch(self, msg: DispatchMessage, headers: dict[str, str]) -> int:
        """Queue a job for the workers; `Nats-Msg-Id` is the job id (no double dispatch)."""
        return await self._publish(
            DISPATCH_SUBJECT, msg.encode(), {**headers, "Nats-Msg-Id": msg.id}
        )

    async def report_all(self, reports: Sequence[Report]) -> None:
        """Status and result messages pipelined, stored in this order."""
        items: list[Publish] = [
            (f"baker.jobs.{r.kind}.{r.job_id}", r.payload, {**r.headers, "Nats-Msg-Id": r.msg_id})
            for r in reports
        ]
        with _queue_errors():
            await self.publisher.publish_all(items)

    async def signal_cancel(self, job_id: str, reason: str | None) -> None:
        """Tell every worker that `job_id` is to be cancelled (a KV put, seen at once)."""
        await self._publish(f"{CANCELS_PREFIX}.{job_id}", cancel_signal(job_id, reason), {})

    async def watch_cancels(self, on_cancel: Callable[[str, str], None]) -> Subscription:
        """Call `on_cancel(job_id, reason)` for every cancel signal put from now on."""

        async def heard(msg: Msg) -> None:
            on_cancel(msg.subject.rsplit(".", 1)[-1], cancel_reason(msg.data))

        return await self._nc.subscribe(f"{CANCELS_PREFIX}.*", cb=heard)

    async def cancel_signal(self, job_id: str) -> str | None:
        """The reason of a cancel signal for `job_id`, if one was sent (a direct get)."""
        try:
            msg = await self._js.get_last_msg(
                CANCELS_STREAM, f"{CANCELS_PREFIX}.{job_id}", direct=True
            )
        except NotFoundError:
            return None
        return cancel_reason(msg.data)

    async def signalled_cancels(self) -> dict[str, str]:
        """Every cancel signal still in the bucket (the last day), job id -> reason."""
        info = await self._js.stream_info(CANCELS_STREAM)
        if not info.state.messages:
            return {}
        found: dict[str, str] = {}
        sub = await self._js.subscribe(
            f"{CANCELS_PREFIX}.*",
            stream=CANCELS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=5)
                found[msg.subject.rsplit(".", 1)[-1]] = cancel_reason(msg.data)
                if msg.metadata.num_pending == 0:
                    return found
        finally:
            await sub.unsubscribe()

    async def fill(self) -> tuple[int, int]:
        """(messages in `BAKER_JOBS`, its message limit; -1 when unlimited)."""
        info = await self._js.stream_info(JOBS_STREAM)
        return int(info.state.messages), int(info.config.max_msgs or -1)

    async def depth(self) -> tuple[int, int]:
        """(jobs waiting for a worker, jobs delivered but not yet acknowledged)."""
        info = await self._js.consumer_info(JOBS_STREAM, WORKERS_CONSUMER)
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)

    async def queued_jobs(self) -> set[str]:
        """Each message of `BAKER_JOBS` from the oldest on, one `next_by_subj` get at a time
        (acknowledged messages are gone, so the walk skips them), to the end of the stream."""
        found: set[str] = set()
        seq = 1
        jsm = self._nc.jsm()
        while True:
            try:
                msg = await jsm.get_msg(JOBS_STREAM, seq=seq, subject="baker.jobs.>", next=True)
            except NotFoundError:
                return found
            job = job_of_message(str(msg.subject), msg.data or b"")
            if job is not None:
                found.add(job)
            seq = int(msg.seq or seq) + 1

    async def close(self) -> None:
        await self.publisher.close()


@contextlib.contextmanager
def _queue_errors() -> Iterator[None]:
    try:
        yield
    except PublishRefused as exc:
        if exc.code == MAX_MESSAGES_EXCEEDED or "maximum messages" in exc.description:
            raise QueueFull(f"the job queue is full ({exc.description})") from exc
        raise QueueUnavailable(str(exc)) from exc
    except PublishUnavailable as exc:
        raise QueueUnavailable(str(exc)) from exc
