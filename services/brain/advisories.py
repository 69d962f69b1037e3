"""Max-deliveries advisories become `JobFailed(reason=max_deliveries)`.

JetStream publishes an advisory when the `workers` consumer gives up on a message; the
`BAKER_ADVISORIES` stream keeps it, so a Brain that was down when it fired still records it.
The given-up message itself stays in the work-queue stream until removed: it is read for its
job id and then deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NotFoundError

from adapters import tracing
from adapters.eventstore import EventStore, StoreUnavailable
from adapters.nats.streams import (
    ADVISORIES_CONSUMER,
    ADVISORIES_STREAM,
    INGEST_CONSUMER,
    JOBS_STREAM,
    WORKERS_CONSUMER,
)
from domain.commands import FailJob
from domain.wire import peek_id
from services.brain.leadership import Fenced

log = logging.getLogger("baker.brain.advisories")


class MaxDeliveries:
    def __init__(self, nc: NATS, store: EventStore) -> None:
        self._js = nc.jetstream()
        self._jsm = nc.jsm()
        self._store = store
        self.recorded = 0

    async def run(self, stop: asyncio.Event) -> None:
        psub = await self._js.pull_subscribe_bind(
            durable=ADVISORIES_CONSUMER, stream=ADVISORIES_STREAM
        )
        try:
            while not stop.is_set():
                try:
                    msgs = await psub.fetch(32, timeout=0.5)
                except (NatsTimeout, TimeoutError):
                    continue
                await self._ingest_caught_up()
                for msg in msgs:
                    await self.handle(msg)
        finally:
            await psub.unsubscribe()

    async def _ingest_caught_up(self, within: float = 10.0) -> None:
        """Let the ingest record what the workers reported first, so a job's history reads in
        the order things happened (after an outage both streams have a backlog)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            info = await self._jsm.consumer_info(JOBS_STREAM, INGEST_CONSUMER)
            if not info.num_pending and not info.num_ack_pending:
                return
            await asyncio.sleep(0.05)  # polling the ingest backlog

    async def handle(self, msg: Msg) -> None:
        try:
            doc = json.loads(msg.data)
            seq, deliveries = int(doc["stream_seq"]), int(doc.get("deliveries", 0))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable advisory on %s: %s", msg.subject, exc)
            await msg.term()
            return
        if doc.get("consumer") != WORKERS_CONSUMER:
            await msg.ack()
            return
        try:
            await self._fail_job(seq, deliveries)
        except (StoreUnavailable, Fenced):  # the leading Brain, or a later try, records it
            await msg.nak(delay=2)
            return
        await msg.ack()

    async def _fail_job(self, seq: int, deliveries: int) -> None:
        try:
            queued = await self._jsm.get_msg(JOBS_STREAM, seq=seq)
        except NotFoundError:
            log.warning("job message %d is gone (expired?): cannot tell which job gave up", seq)
            return
        job_id = peek_id(queued.data or b"")
        if job_id is None:
            log.error("given-up message %d has no readable job id", seq)
        else:
            error = f"no worker completed the job in {deliveries} deliveries"
            outcome = await self._store.execute(
                "job",
                job_id,
                FailJob(reason="max_deliveries", error=error),
                causation_id=f"max-deliveries-{seq}",
                trace_id=tracing.trace_id_from_headers(queued.headers),
            )
            self.recorded += int(outcome.changed)
            log.warning("job gave up after %d deliveries", deliveries, extra={"job_id": job_id})
        with contextlib.suppress(NotFoundError):
            await self._jsm.delete_msg(JOBS_STREAM, seq)
