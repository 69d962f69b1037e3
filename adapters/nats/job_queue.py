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
from adapters.nats.errors import NatsError
from adapters.nats.message import JetStreamError, Msg
from adapters.nats.publisher import JetStreamPublisher, Publish, PublishUnavailable
from adapters.nats.reader import OrderedReader
from adapters.nats.streams import (
    CANCELS_PREFIX,
    CANCELS_STREAM,
    JOBS_STREAM,
    LANE_CONSUMERS,
)
from adapters.nats.subscriptions import CoreSubscription
from domain.priority import DISPATCH_SUBJECT as DISPATCH_LANES
from domain.priority import PRIORITIES, lane_subject, subject_lane
from domain.queue import (
    LaneState,
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
PAUSED_FOR_EVER = "9999-01-01T00:00:00Z"  # consumer pause needs a deadline: none in practice


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
        """Queue a job on its priority's lane; `Nats-Msg-Id` is the job id (no double
        dispatch)."""
        return await self._publish(
            lane_subject(msg.priority),
            msg.encode(),
            {**headers, "Nats-Msg-Id": dispatch_msg_id(msg)},
        )

    async def dispatch_all(self, items: Sequence[tuple[DispatchMessage, dict[str, str]]]) -> None:
        """Jobs for the workers, pipelined (all on the wire before the first answer)."""
        publishes: list[Publish] = [
            (lane_subject(msg.priority), msg.encode(),
             {**headers, "Nats-Msg-Id": dispatch_msg_id(msg)})
            for msg, headers in items
        ]  # fmt: skip
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

    async def watch_lanes(self, on_queued: Callable[[str], None]) -> CoreSubscription:
        """Call `on_queued(lane)` for each dispatch published on a lane's own subject
        (`baker.jobs.dispatch.<lane>`, not the normal lane's): core NATS hands every publish
        to plain subscribers beside the stream, so this costs nothing for normal jobs."""

        def heard(msg: Msg) -> None:
            lane = subject_lane(msg.subject)
            if lane is not None:
                on_queued(lane)

        sub = CoreSubscription(self._client.subscribe(f"{DISPATCH_LANES}.*", heard))
        await self._client.flush()
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
        """(jobs waiting for a worker, jobs delivered but not yet acknowledged), all lanes."""
        lanes = (await self.lanes()).values()
        return sum(lane.queued for lane in lanes), sum(lane.in_flight for lane in lanes)

    async def lanes(self) -> dict[str, LaneState]:
        """Each priority lane's consumer: waiting, in a worker's hands, paused. A lane whose
        consumer is missing (not provisioned yet) counts as empty."""
        out: dict[str, LaneState] = {}
        for lane in PRIORITIES:
            try:
                info = await jsapi.consumer_info(self._client, JOBS_STREAM, LANE_CONSUMERS[lane])
            except jsapi.NotFound:
                out[lane] = LaneState(0, 0, False)
                continue
            out[lane] = LaneState(
                int(info.get("num_pending") or 0),
                int(info.get("num_ack_pending") or 0),
                bool(info.get("paused")),
            )
        return out

    async def pause_lanes(self, paused: bool) -> None:
        """Pause (or resume) every lane's consumer on the server (2.11+): a paused consumer
        delivers nothing to any worker, ours or a seed-protocol one, while acks of running jobs
        still count; the server keeps the pause across restarts of everything."""
        body = {"pause_until": PAUSED_FOR_EVER} if paused else {}
        for lane in PRIORITIES:
            subject = f"CONSUMER.PAUSE.{JOBS_STREAM}.{LANE_CONSUMERS[lane]}"
            try:
                with _queue_errors():
                    await jsapi.api(self._client, subject, body)
            except NatsError as exc:  # no answer: the caller retries (the pause is idempotent)
                raise QueueUnavailable(f"{subject}: {exc}") from exc

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
