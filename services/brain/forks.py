"""Rerun and fork (DESIGN §10): a new job from a recorded one.

A rerun dispatches the same spec again, naming the source in `rerunOf`. A fork starts a new
agent job whose conversation is the source's recorded steps up to `fromStep`, copied into its
own `JobDispatched` (so its history alone shows the conversation it continues, and the copied
model calls are neither made nor paid for again), with the model, prompt or system changed if
asked; its worker resumes from those steps like any resumed job.
"""

from __future__ import annotations

from domain.errors import FieldError
from domain.events import (
    AgentModelCalled,
    AgentToolCalled,
    AgentToolReturned,
    Envelope,
    JobDispatched,
    to_document,
)
from domain.specs import holds_redactions, parse_job_spec
from services.brain.dispatcher import Dispatched, Dispatcher, JobNotFound, Origin

COPIED = (AgentModelCalled, AgentToolCalled, AgentToolReturned)


class CannotCopy(Exception):
    """The source job cannot be rerun or forked as asked; the message says why."""


class Forks:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def _source(self, job_id: str) -> tuple[JobDispatched, list[Envelope]]:
        history = await self._dispatcher.executor.store.load("job", job_id)
        if not history.events:
            raise JobNotFound(job_id)
        first = history.events[0].envelope.data
        assert isinstance(first, JobDispatched)  # a job's history starts with its dispatch
        return first, [stored.envelope for stored in history.events[1:]]

    async def rerun(self, job_id: str) -> Dispatched:
        source, _ = await self._source(job_id)
        if holds_redactions(source.job_type, source.payload):
            raise CannotCopy("its payload held secrets, which the event log does not keep")
        # The same spec, labels included; not its idempotency key (a rerun is a new job).
        spec = parse_job_spec({"type": source.job_type, "payload": source.payload,
                               "timeoutSeconds": source.timeout_seconds,
                               "labels": source.labels, "priority": source.priority})  # fmt: skip
        return await self._dispatcher.dispatch(spec, origin=Origin(rerun_of=job_id))

    async def fork(self, job_id: str, from_step: int, changes: dict[str, str | None]) -> Dispatched:
        """`changes`: `model`, `prompt`, `system` to use instead of the source's (None: keep)."""
        source, events = await self._source(job_id)
        if source.job_type != "agent":
            raise CannotCopy(f"only agent jobs can be forked; {job_id} is a {source.job_type} job")
        steps = [env for env in events if isinstance(env.data, COPIED)]
        last = max((_step(env) for env in steps), default=0)
        if not 1 <= from_step <= last:
            raise FieldError("fromStep", f"must be a recorded step of {job_id}: 1 to {last}")
        payload = {**source.payload, **{k: v for k, v in changes.items() if v is not None}}
        spec = parse_job_spec({"type": "agent", "payload": payload,
                               "timeoutSeconds": source.timeout_seconds,
                               "labels": source.labels})  # fmt: skip
        copied = tuple(to_document(env) for env in steps if _step(env) <= from_step)
        origin = Origin(fork_of={"jobId": job_id, "step": from_step}, forked_steps=copied)
        return await self._dispatcher.dispatch(spec, origin=origin)


def _step(env: Envelope) -> int:
    return int(getattr(env.data, "step", 0))
