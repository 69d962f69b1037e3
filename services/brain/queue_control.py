"""Pausing and resuming the queue (DESIGN §11): the use cases behind `POST /api/queue/pause`
and `/resume`, and the reconciliation a Brain does when it starts leading.

The decision is the `queue` lifecycle's (an event, or none when the queue is already in that
state); the effect is the job queue's (`JobQueue.pause_lanes`: JetStream's consumer pause on
every lane). The event is appended first and the pause applied after it, every time, also
when the command was a no-op: so a Brain that stopped between the two, or a server that lost
the pause, is put right by the next pause or resume and by `reconcile` at the start of each
leading Brain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from domain.commands import PauseQueue, ResumeQueue
from domain.events import format_time
from domain.lifecycle.queue import QUEUE_ID, QueueState
from services.executor import CommandExecutor
from services.ports.jobs import JobQueue

log = logging.getLogger("baker.brain.queue")


@dataclass(frozen=True)
class QueueChange:
    changed: bool  # False: it was in that state already
    seq: int  # the stream sequence of the queue's last event (0: none yet)


class QueueControl:
    def __init__(self, executor: CommandExecutor, queue: JobQueue) -> None:
        self._executor = executor
        self._queue = queue

    async def pause(self, by: str | None = None, reason: str | None = None) -> QueueChange:
        return await self._set(PauseQueue(by=by, reason=reason), paused=True)

    async def resume(self, by: str | None = None, reason: str | None = None) -> QueueChange:
        return await self._set(ResumeQueue(by=by, reason=reason), paused=False)

    async def _set(self, cmd: PauseQueue | ResumeQueue, *, paused: bool) -> QueueChange:
        outcome = await self._executor.execute("queue", QUEUE_ID, cmd)
        await self._queue.pause_lanes(paused)
        if outcome.changed:
            log.warning("queue %s by %s: %s", "paused" if paused else "resumed",
                        cmd.by or "?", cmd.reason or "no reason given")  # fmt: skip
        return QueueChange(outcome.changed, outcome.position.seq)

    async def reconcile(self) -> bool:
        """Apply the recorded state to the lanes (at the start of a leading Brain); whether
        the queue is paused."""
        history = await self._executor.store.load("queue", QUEUE_ID)
        state: QueueState = history.state
        await self._queue.pause_lanes(state.paused)
        return state.paused

    async def describe(self) -> dict[str, Any]:
        """The queue as the API shows it: recorded state, who and why, and each lane."""
        history = await self._executor.store.load("queue", QUEUE_ID)
        state: QueueState = history.state
        last = history.events[-1].envelope if history.events else None
        lanes = await self._queue.lanes()
        return {
            "state": state.status,
            "paused": state.paused,
            "by": state.by,
            "reason": state.reason,
            "since": format_time(last.occurred_at) if last is not None else None,
            "lanes": {
                lane: {"queued": s.queued, "inFlight": s.in_flight, "paused": s.paused}
                for lane, s in lanes.items()
            },
        }
