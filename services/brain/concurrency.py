"""Concurrency keys (DESIGN §11): at most `concurrencyLimit` jobs of one `concurrencyKey`
received or running at once, across all workers and hosts.

The gate sits between the Brain and the job queue (it is the `JobQueue` the Brain's parts are
handed). A job with a key is published for the workers only while fewer than its limit of that
key's jobs are *admitted*: published and not yet ended. Counting published jobs, not only
received or running ones, is what makes the limit hold when a worker dies holding a job: its
message is redelivered to another worker, and the job keeps its slot until it ends. Any other
job is recorded `JobHeld` (still `dispatched`: queued, with the reason on its row) and waits
in order; when an admitted job of its key ends (completed, failed, cancelled, or waiting
without a worker: `retrying`, `scheduled`, `waiting` for an approval), the next held job is
recorded `JobQueued` (cause `concurrency`) and only then published. Jobs without a key go
straight through.

The counts live in the leading Brain only (one leads at a time, and a deposed one's appends
are fenced). A Brain that starts leading rebuilds them from the log before it admits a keyed
job (`seed`, from the watchdog's fold of every job, then `settle`): held jobs wait again in
dispatch order, received and running ones hold their slots, and a `dispatched` one holds a
slot if its message is in the queue; one that is not (its Brain stopped before publishing it)
is queued again through this gate by the watchdog's requeue, so it is admitted or held like
any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from adapters.eventstore import StoreUnavailable
from domain.commands import FailJob, HoldJob, QueueJob
from domain.events import JobDispatched, JobHeld, JobQueued
from domain.queue import (
    LaneState,
    NotRequeueable,
    QueueFull,
    QueueUnavailable,
    requeue_message,
)
from domain.wire import DispatchMessage
from services.brain.leadership import Fenced
from services.executor import CommandExecutor, Outcome
from services.ports.jobs import JobQueue
from services.ports.topics import Subscription

log = logging.getLogger("baker.brain.concurrency")

# States in which a job holds no slot of its key: nobody runs it and nothing of it is queued.
_SLOTLESS = frozenset({"scheduled", "retrying", "waiting", "completed", "failed", "cancelled"})


@dataclass
class _Key:
    admitted: set[str] = field(default_factory=set)
    held: deque[str] = field(default_factory=deque)
    limits: dict[str, int] = field(default_factory=dict)  # held job -> its own limit
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class KeyState:
    admitted: int
    held: int


class ConcurrencyGate:
    """A `JobQueue` that holds a keyed job back while its key is at its limit."""

    def __init__(
        self,
        queue: JobQueue,
        executor: CommandExecutor,
        on_outcome: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        self._queue = queue
        self._executor = executor
        self._on_outcome = on_outcome or (lambda _job, _outcome: None)
        self._keys: dict[str, _Key] = {}
        self._job_key: dict[str, str] = {}
        self._messages: dict[str, tuple[DispatchMessage, dict[str, str]]] = {}
        self._unsure: dict[str, str] = {}  # seeded `dispatched` jobs: job -> key
        self._deciding: set[str] = set()  # keyed dispatches waiting for the seed
        self._releasing: set[str] = set()  # popped from `held`, not yet published
        self._ready = asyncio.Event()
        self.held_total = 0  # jobs held so far (a counter for /metrics)

    # --- the queue port: keyed dispatches gated, everything else as the queue does it ------

    async def signal_cancel(self, job_id: str, reason: str | None) -> None:
        await self._queue.signal_cancel(job_id, reason)

    async def watch_cancels(self, on_cancel: Callable[[str, str], None]) -> Subscription:
        return await self._queue.watch_cancels(on_cancel)

    async def signalled_cancels(self) -> dict[str, str]:
        return await self._queue.signalled_cancels()

    async def cancel_signal(self, job_id: str) -> str | None:
        return await self._queue.cancel_signal(job_id)

    async def fill(self) -> tuple[int, int]:
        return await self._queue.fill()

    async def depth(self) -> tuple[int, int]:
        return await self._queue.depth()

    async def lanes(self) -> dict[str, LaneState]:
        return await self._queue.lanes()

    async def pause_lanes(self, paused: bool) -> None:
        await self._queue.pause_lanes(paused)

    async def queued_jobs(self) -> set[str]:
        return await self._queue.queued_jobs()

    async def close(self) -> None:
        await self._queue.close()

    async def dispatch(self, msg: DispatchMessage, headers: dict[str, str]) -> int:
        key = msg.concurrency_key
        if key is None:
            return await self._queue.dispatch(msg, headers)
        self._deciding.add(msg.id)
        try:
            await self._ready.wait()
        finally:
            self._deciding.discard(msg.id)
        slot = self._keys.setdefault(key, _Key())
        async with slot.lock:
            self._unsure.pop(msg.id, None)
            admit = msg.id in slot.admitted or (
                not slot.held and len(slot.admitted) < (msg.concurrency_limit or 1)
            )
            if admit:
                slot.admitted.add(msg.id)
                self._job_key[msg.id] = key
            else:
                await self._hold(slot, key, msg, headers)
                return 0
        try:
            return await self._queue.dispatch(msg, headers)
        except (QueueFull, QueueUnavailable):
            await self.leave(msg.id)  # the caller fails the job: its slot is free again
            raise

    async def dispatch_all(self, items: Sequence[tuple[DispatchMessage, dict[str, str]]]) -> None:
        plain = [item for item in items if item[0].concurrency_key is None]
        if plain:
            await self._queue.dispatch_all(plain)
        for msg, headers in items:
            if msg.concurrency_key is not None:
                await self.dispatch(msg, headers)

    # --- what the Brain tells it ---------------------------------------------------------

    def observe(self, job_id: str, state: Any) -> None:
        """A job's new state (from the dispatcher, the ingest, the watchdog or the timer)."""
        key = getattr(state, "concurrency_key", None)
        if key is None:
            return
        if state.status in _SLOTLESS:
            self._forget_soon(job_id)
        elif state.status in ("received", "running"):
            self._keys.setdefault(key, _Key()).admitted.add(job_id)
            self._job_key[job_id] = key

    def seed(self, states: Iterable[tuple[str, Any]]) -> None:
        """Rebuild the counts from every job's state as folded from the log, in dispatch
        order (a Brain that starts leading), before `settle`."""
        for job_id, state in states:
            key = getattr(state, "concurrency_key", None)
            if key is None or state.status in _SLOTLESS or job_id in self._deciding:
                continue
            slot = self._keys.setdefault(key, _Key())
            self._job_key[job_id] = key
            if state.held:
                if job_id not in slot.held:
                    slot.held.append(job_id)
                    slot.limits[job_id] = state.concurrency_limit or 1
            elif state.status == "dispatched":
                self._unsure[job_id] = key
            else:
                slot.admitted.add(job_id)

    async def settle(self) -> None:
        """Seeded `dispatched` jobs whose message is in the queue hold their slots; the rest
        are queued again by the requeue, through `dispatch`. Then keyed jobs are admitted."""
        if self._unsure:
            try:
                present = await self._queue.queued_jobs()
            except QueueUnavailable as exc:  # unknown: each holds a slot (never too many)
                log.warning("could not read the queue, counting its jobs as queued: %s", exc)
                present = set(self._unsure)
            for job_id, key in list(self._unsure.items()):
                if job_id in present:
                    self._keys.setdefault(key, _Key()).admitted.add(job_id)
                    del self._unsure[job_id]
        self._ready.set()
        await self.release_all()

    def state(self) -> dict[str, KeyState]:
        """Each key's admitted and held jobs now."""
        return {k: KeyState(len(s.admitted), len(s.held)) for k, s in self._keys.items()}

    def holds(self, job_id: str) -> bool:
        """Whether `job_id` waits here (held, or being released)."""
        if job_id in self._releasing:
            return True
        return any(job_id in s.held for s in self._keys.values())

    async def release_all(self) -> int:
        """Release held jobs while their keys have room; how many were queued."""
        if not self._ready.is_set():
            return 0
        released = 0
        for key in list(self._keys):
            released += await self._release(key)
        return released

    async def leave(self, job_id: str) -> None:
        """`job_id` holds no slot any more (it ended or waits without a worker)."""
        key = self._job_key.pop(job_id, None)
        self._unsure.pop(job_id, None)
        self._messages.pop(job_id, None)
        slot = self._keys.get(key) if key is not None else None
        if key is None or slot is None:
            return
        slot.admitted.discard(job_id)
        if job_id in slot.held:
            slot.held.remove(job_id)
            slot.limits.pop(job_id, None)
        await self._release(key)
        if not slot.admitted and not slot.held and not slot.lock.locked():
            self._keys.pop(key, None)  # a key nobody uses costs nothing

    # --- inside --------------------------------------------------------------------------

    def _forget_soon(self, job_id: str) -> None:
        if job_id in self._job_key or job_id in self._unsure:
            task = asyncio.get_running_loop().create_task(self.leave(job_id))
            task.add_done_callback(_log_failure)

    async def _hold(
        self, slot: _Key, key: str, msg: DispatchMessage, headers: dict[str, str]
    ) -> None:
        limit = msg.concurrency_limit or 1
        cmd = HoldJob(concurrency_key=key, concurrency_limit=limit, attempt=msg.attempt or 1)
        try:
            outcome = await self._executor.execute("job", msg.id, cmd)
        except StoreUnavailable as exc:
            raise QueueUnavailable(f"could not record the job held by its key: {exc}") from exc
        self._on_outcome(msg.id, outcome)
        if not any(isinstance(e.envelope.data, JobHeld) for e in outcome.appended):
            return  # ended meanwhile (cancelled): nothing to hold
        slot.held.append(msg.id)
        slot.limits[msg.id] = limit
        self._job_key[msg.id] = key
        self._messages[msg.id] = (msg, headers)
        self.held_total += 1
        log.info("held by concurrency key %s (limit %d)", key, limit, extra={"job_id": msg.id})

    async def _release(self, key: str) -> int:
        slot = self._keys.get(key)
        if slot is None or not self._ready.is_set():
            return 0
        queued: list[str] = []
        async with slot.lock:
            while slot.held and len(slot.admitted) < slot.limits.get(slot.held[0], 1):
                job_id = slot.held[0]
                answer = await self._queue_held(job_id)
                if answer == "later":
                    break  # first in line still; tried again by the watchdog's next check
                slot.held.popleft()
                slot.limits.pop(job_id, None)
                if answer == "queued":
                    slot.admitted.add(job_id)
                    self._releasing.add(job_id)
                    queued.append(job_id)
        for job_id in queued:
            try:
                await self._publish(job_id)
            finally:
                self._releasing.discard(job_id)
        return len(queued)

    async def _queue_held(self, job_id: str) -> Literal["queued", "gone", "later"]:
        try:
            outcome = await self._executor.execute("job", job_id, QueueJob())
        except (StoreUnavailable, Fenced):  # tried again later, or by the leading Brain
            log.warning("could not queue a held job yet", extra={"job_id": job_id})
            return "later"
        self._on_outcome(job_id, outcome)
        if any(isinstance(e.envelope.data, JobQueued) for e in outcome.appended):
            return "queued"
        return "gone"  # cancelled or failed meanwhile

    async def _publish(self, job_id: str) -> None:
        msg, headers = self._messages.pop(job_id, (None, {}))
        try:
            if msg is None:  # held by an earlier Brain: rebuilt from the log
                msg = await self._rebuild(job_id)
            await self._queue.dispatch(msg, headers)
        except NotRequeueable as exc:
            error = f"held by its concurrency key when a Brain stopped, and {exc}"
            failed = await self._executor.execute(
                "job", job_id, FailJob(reason="dispatch_failed", error=error)
            )
            self._on_outcome(job_id, failed)
        except (QueueFull, QueueUnavailable) as exc:
            # `dispatched` with no message: the watchdog's undeliverable rule, or the next
            # leading Brain's requeue, sees to it; it keeps its slot until then
            log.warning("held job queued, not published yet: %s", exc, extra={"job_id": job_id})

    async def _rebuild(self, job_id: str) -> DispatchMessage:
        history = await self._executor.store.load("job", job_id)
        first = history.events[0].envelope.data
        assert isinstance(first, JobDispatched)  # a job's history starts with its dispatch
        queued = [e.envelope.data for e in history.events if isinstance(e.envelope.data, JobQueued)]
        return requeue_message(job_id, first, queued[-1].attempt if queued else None)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not free a concurrency slot", exc_info=task.exception())
