"""A resuming agent job's recorded steps (the `StepHistory` port) on JetStream: whether any
of the job's step messages is still in `BAKER_JOBS` (a work queue: the ingest removes a
message once its event is stored), and the job's step events from the log."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import JOBS_STREAM
from domain.conversation import job_steps
from domain.events import DomainEvent


class JetStreamStepHistory:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._events = JetStreamEventStore(client)

    async def steps_queued(self, job_id: str) -> bool:
        query = {"last_by_subj": f"baker.jobs.step.{job_id}"}
        return await jsapi.get_msg(self._client, JOBS_STREAM, query) is not None

    async def recorded_steps(self, job_id: str) -> Sequence[DomainEvent]:
        history = await self._events.load("job", job_id)
        return job_steps([stored.envelope.data for stored in history.events])
