"""Jobs recorded but never queued: the Brain stopped between appending `JobDispatched` and
publishing the dispatch message (a crash, a kill, a lost server). A Brain that starts leading
finds them and queues them again.

Which jobs: those `dispatched` in the log with no message at all in the queue's stream. The
queue's stream is read in order to its end (`JobQueue.queued_jobs`) and only then is each such
job's state read again from the log, so a job that was queued is never mistaken for one that
was not: a job's message leaves the stream only after a later trace of it exists (a worker
reports before it acknowledges the dispatch; the ingest appends before it acknowledges a
report), either further on in the stream, where the walk still finds it, or in the log.

The dispatch message is rebuilt from `JobDispatched` and published with the job id as its
`Nats-Msg-Id`, so a copy still within the stream's duplicate window is not queued twice. A job
whose recorded payload had secrets masked cannot be rebuilt as sent: it is failed with reason
`dispatch_failed`, naming why, so its client can dispatch it again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from adapters.eventstore import StoredEvent
from domain.commands import FailJob
from domain.events import JobDispatched
from domain.queue import NotRequeueable, QueueFull, QueueUnavailable, requeue_message
from services.executor import CommandExecutor
from services.ports.jobs import JobQueue

log = logging.getLogger("baker.brain.requeue")


@dataclass(frozen=True)
class Requeued:
    queued: list[str]
    failed: list[str]


async def requeue_unqueued(
    executor: CommandExecutor, queue: JobQueue, candidates: Iterable[str]
) -> Requeued:
    """Queue again every job of `candidates` (jobs last seen `dispatched`) that is still
    `dispatched` and has no message in the queue's stream. A job the queue refuses now (full,
    unreachable) stays as it is and is logged."""
    wanted = list(candidates)
    if not wanted:
        return Requeued([], [])
    present = await queue.queued_jobs()
    queued: list[str] = []
    failed: list[str] = []
    for job_id in wanted:
        if job_id in present:
            continue
        executor.forget("job", job_id)  # read the log now, not what was cached before the walk
        history = await executor.store.load("job", job_id)
        if history.state.status != "dispatched" or not history.events:
            continue
        try:
            attempt = history.state.attempt + 1  # past 1 after an approval: a new message id
            done = await _requeue(executor, queue, job_id, history.events[0], attempt)
        except (QueueFull, QueueUnavailable) as exc:
            log.warning("could not queue a job again yet: %s", exc, extra={"job_id": job_id})
            continue
        (queued if done else failed).append(job_id)
    return Requeued(queued, failed)


async def _requeue(
    executor: CommandExecutor, queue: JobQueue, job_id: str, first: StoredEvent, attempt: int
) -> bool:
    env = first.envelope
    context = {"job_id": job_id, "trace_id": env.trace_id}
    assert isinstance(env.data, JobDispatched)  # a job's history starts with its dispatch
    try:
        message = requeue_message(job_id, env.data, attempt)
    except NotRequeueable as exc:
        error = f"the Brain stopped before queueing this job, and {exc}"
        await executor.execute(
            "job", job_id, FailJob(reason="dispatch_failed", error=error), trace_id=env.trace_id
        )
        log.warning("could not queue a job again: %s", exc, extra=context)
        return False
    headers = {}
    if env.trace_id:  # the worker's span joins the job's trace, as for a first dispatch
        headers["traceparent"] = f"00-{env.trace_id}-{secrets.token_hex(8)}-01"
    await queue.dispatch(message, headers)
    log.warning("queued again a job its Brain recorded but never queued", extra=context)
    return True
