"""The job queue on JetStream: dispatch, worker status and results, cancel signals.

Every publish waits for JetStream's acknowledgement and carries a `Nats-Msg-Id`, so retries
after silence never queue a job or a status twice. Implements the Brain's `JobQueue`, the
worker's `ReportSink` and `CancelSignals` ports (`services.ports.jobs`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.message import JetStreamError, Msg
from adapters.nats.publisher import JetStreamPublisher, Publish, PublishUnavailable
from adapters.nats.reader import OrderedReader
from adapters.nats.streams import (
    CANCELS_PREFIX,
    CANCELS_STREAM,
    DISPATCH_SUBJECT,
    JOBS_STREAM,
    WORKERS_CONSUMER,
)
from adapters.nats.subscriptions import CoreSubscription
from domain.queue import (
    QueueFull,
    QueueUnavailable,
    Report,
    cancel_reason,
    cancel_signal,
    dispatch_msg_id,
    job_of_message,
)
from domain.wire import DispatchMessage

__all__ = ["JetStreamJobQueue", "QueueFull", "QueueUnavailable", "Report"]
MAX_MESSAGES_EXCEEDED = 10077  # discard-new stream at its message limit


class JetStreamJobQueue:
    def __init__(self, client: Client, *, request_timeout: float = 2.0, retry_for: float = 15.0):
        self._client = client
        self.publisher = JetStreamPublisher(
            client, request_timeout=request_timeout, retry_for=retry_for
        )

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> int:
        with _queue_errors():
            return (await self.publisher.publish(subject, payload, headers)).seq

    async def dispatch(self, msg: DispatchMessage, headers: dict[str, str]) -> int:
        """Queue a job for the workers; `Nats-Msg-Id` is the job id (no double dispatch)."""
        return await self._publish(
            DISPATCH_SUBJECT, msg.encode(), {**headers, "Nats-Msg-Id": dispatch_msg_id(msg)}
        )

    async def dispatch_all(self, items: Sequence[tuple[DispatchMessage, dict[str, str]]]) -> None:
        """Jobs for the workers, pipelined (all on the wire before the first answer)."""
        publishes: list[Publish] = [
            (DISPATCH_SUBJECT, msg.encode(), {**headers, "Nats-Msg-Id": dispatch_msg_id(msg)})
            for msg, headers in items
        ]
        with _queue_errors():
            await self.publisher.publish_all(publishes)

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

    async def watch_cancels(self, on_cancel: Callable[[str, str], None]) -> CoreSubscription:
        """Call `on_cancel(job_id, reason)` for every cancel signal put from now on."""

        def heard(msg: Msg) -> None:
            on_cancel(msg.subject.rsplit(".", 1)[-1], cancel_reason(msg.data))

        sub = CoreSubscription(self._client.subscribe(f"{CANCELS_PREFIX}.*", heard))
        await self._client.flush()  # subscribed: a signal put from now on is heard
        return sub

    async def cancel_signal(self, job_id: str) -> str | None:
        """The reason of a cancel signal for `job_id`, if one was sent (a direct get)."""
        query = {"last_by_subj": f"{CANCELS_PREFIX}.{job_id}"}
        msg = await jsapi.direct_get(self._client, CANCELS_STREAM, query)
        return None if msg is None else cancel_reason(msg.data)

    async def signalled_cancels(self) -> dict[str, str]:
        """Every cancel signal still in the bucket (the last day), job id -> reason: the last
        value of each key, read through to the end (a batch direct get would stop at 1,024
        keys)."""
        info = await jsapi.stream_info(self._client, CANCELS_STREAM)
        if not info["state"]["messages"]:
            return {}
        found: dict[str, str] = {}
        reader = OrderedReader(
            self._client, CANCELS_STREAM, start_seq=None, filter_subject=f"{CANCELS_PREFIX}.*"
        )
        try:
            while got := await reader.fetch(1000, wait=1.0):
                for _, pending, msg in got:
                    found[msg.subject.rsplit(".", 1)[-1]] = cancel_reason(msg.data)
                    if not pending:
                        return found
            return found
        finally:
            await reader.close()

    async def fill(self) -> tuple[int, int]:
        """(messages in `BAKER_JOBS`, its message limit; -1 when unlimited)."""
        info = await jsapi.stream_info(self._client, JOBS_STREAM)
        return int(info["state"]["messages"]), int(info["config"].get("max_msgs") or -1)

    async def depth(self) -> tuple[int, int]:
        """(jobs waiting for a worker, jobs delivered but not yet acknowledged)."""
        info = await jsapi.consumer_info(self._client, JOBS_STREAM, WORKERS_CONSUMER)
        return int(info.get("num_pending") or 0), int(info.get("num_ack_pending") or 0)

    async def queued_jobs(self) -> set[str]:
        """Each message of `BAKER_JOBS` from the oldest on, one `next_by_subj` get at a time
        (acknowledged messages are gone, so the walk skips them), to the end of the stream.
        A work-queue stream takes no reader beside its consumers, hence the gets."""
        found: set[str] = set()
        seq = 1
        while True:
            query = {"seq": seq, "next_by_subj": "baker.jobs.>"}
            msg = await jsapi.get_msg(self._client, JOBS_STREAM, query)
            if msg is None:
                return found
            job = job_of_message(msg.subject, msg.data)
            if job is not None:
                found.add(job)
            seq = msg.seq + 1

    async def close(self) -> None:
        """Nothing to release: requests share the client's reply subscription."""


@contextlib.contextmanager
def _queue_errors() -> Iterator[None]:
    try:
        yield
    except JetStreamError as exc:
        if exc.err_code == MAX_MESSAGES_EXCEEDED or "maximum messages" in exc.description:
            raise QueueFull(f"the job queue is full ({exc.description})") from exc
        raise QueueUnavailable(str(exc)) from exc
    except PublishUnavailable as exc:
        raise QueueUnavailable(str(exc)) from exc
