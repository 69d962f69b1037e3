"""Max-deliveries advisories become `JobFailed(reason=max_deliveries)`.

JetStream publishes an advisory when the `workers` consumer gives up on a message; the
`BAKER_ADVISORIES` stream keeps it, so a Brain that was down when it fired still records it.
The given-up message itself stays in the work-queue stream until removed: it is read for its
job id and then deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging

from adapters import tracing
from adapters.clock import SYSTEM_CLOCK
from adapters.eventstore import StoreUnavailable
from adapters.nats.streams import LANE_CONSUMERS
from domain.commands import FailJob
from domain.wire import peek_id
from services.brain.leadership import Fenced
from services.executor import CommandExecutor
from services.ports.clock import Clock
from services.ports.jobs import Advisories, Delivery

log = logging.getLogger("baker.brain.advisories")


class MaxDeliveries:
    def __init__(
        self, executor: CommandExecutor, advisories: Advisories, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._executor = executor
        self._advisories = advisories
        self._clock = clock
        self.recorded = 0

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                msgs = await self._advisories.fetch(32, wait=0.5)
                if not msgs:
                    continue
                await self._ingest_caught_up()
                for msg in msgs:
                    await self.handle(msg)
        finally:
            await self._advisories.close()

    async def _ingest_caught_up(self, within: float = 10.0) -> None:
        """Let the ingest record what the workers reported first, so a job's history reads in
        the order things happened (after an outage both streams have a backlog)."""
        deadline = self._clock.now() + within
        while self._clock.now() < deadline:
            if not await self._advisories.ingest_pending():
                return
            await self._clock.sleep(0.05)  # polling the ingest backlog

    async def handle(self, msg: Delivery) -> None:
        try:
            doc = json.loads(msg.data)
            seq, deliveries = int(doc["stream_seq"]), int(doc.get("deliveries", 0))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable advisory on %s: %s", msg.subject, exc)
            msg.term()
            return
        if doc.get("consumer") not in LANE_CONSUMERS.values():
            msg.ack()
            return
        try:
            await self._fail_job(seq, deliveries)
        except (StoreUnavailable, Fenced):  # the leading Brain, or a later try, records it
            msg.nak(delay=2)
            return
        msg.ack()

    async def _fail_job(self, seq: int, deliveries: int) -> None:
        queued = await self._advisories.queued(seq)
        if queued is None:
            log.warning("job message %d is gone (expired?): cannot tell which job gave up", seq)
            return
        data, headers = queued
        job_id = peek_id(data)
        if job_id is None:
            log.error("given-up message %d has no readable job id", seq)
        else:
            error = f"no worker completed the job in {deliveries} deliveries"
            outcome = await self._executor.execute(
                "job",
                job_id,
                FailJob(reason="max_deliveries", error=error, at=self._clock.wall()),
                causation_id=f"max-deliveries-{seq}",
                trace_id=tracing.trace_id_from_headers(headers),
            )
            self.recorded += int(outcome.changed)
            log.warning("job gave up after %d deliveries", deliveries, extra={"job_id": job_id})
        await self._advisories.remove(seq)
