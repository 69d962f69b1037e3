"""Dispatch with an idempotency key (DESIGN §11): the first request makes the job, a repeat
within the TTL answers that job, a repeat with another spec is refused.

The key is claimed (durably, compare-and-set) for a freshly minted job id *before* the job is
recorded, and the job is then dispatched under that id. If the Brain dies between the two, or
the queue refuses the job before it is recorded, the key names a job that does not exist; the
client's retry (same key, same spec) then finds no job under that id and dispatches it, under
the same id, so the key still makes exactly one job. Repeats in this process are serialised per
key, so a retry racing its first request cannot dispatch the same id twice.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from domain.idempotency import fingerprint
from domain.specs import AgentJob, CommandJob, HttpJob
from services.brain.dispatcher import Dispatched, Dispatcher, new_job_id
from services.ports.idempotency import IdempotencyKeys

JobSpec = AgentJob | CommandJob | HttpJob


class KeyReused(Exception):
    """The key was used within the TTL for a different job spec."""

    def __init__(self, key: str, job_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was used for a different job ({job_id}) within the TTL;"
            " send the same job again, or use a new key"
        )
        self.key = key
        self.job_id = job_id


@dataclass(frozen=True)
class Answer:
    dispatched: Dispatched
    created: bool  # False: a repeat, answered with the first job


class IdempotentDispatch:
    def __init__(self, dispatcher: Dispatcher, keys: IdempotencyKeys) -> None:
        self._dispatcher = dispatcher
        self.keys = keys
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def dispatch(self, spec: JobSpec, key: str) -> Answer:
        """The job for `key`: new, or the first one (`KeyReused` when its spec differs).
        Raises what `Dispatcher.dispatch` raises."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            mine = new_job_id()
            claim = await self.keys.claim(key, mine, fingerprint(spec))
            if claim.fingerprint != fingerprint(spec):
                raise KeyReused(key, claim.job_id)
            if claim.job_id == mine:
                return Answer(await self._dispatcher.dispatch(spec, job_id=mine), True)
            _state, position = await self._dispatcher.executor.current("job", claim.job_id)
            if position.version == 0:  # claimed, never recorded: finish that first request
                return Answer(await self._dispatcher.dispatch(spec, job_id=claim.job_id), True)
            return Answer(Dispatched(claim.job_id, position.seq, None), False)
