"""One follower of the event log per process, fanning stored events out to SSE clients.

Only stored events are delivered (a publish that JetStream refused never reaches a client),
in stream order, with their sequence, so a client can join a replayed history to the live
feed without gaps or repeats.

The log is followed only while someone listens: the first subscriber starts a follower at
the head of the log, and the last one to leave stops it. A Brain under load with no
dashboard open does not read and decode every event a second time for nobody
(`python -m bench api`: about a twentieth of `baker up`'s CPU per job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from adapters.eventstore import EventStore, StoredEvent

log = logging.getLogger("baker.api.bus")
ALL = "*"
Feed = asyncio.Queue[StoredEvent | bytes | None]
"""A subscriber's queue: stored events, ready SSE frames its owner adds itself (a job's live
output), and `None` once the feed has ended."""


class EventBus:
    def __init__(self, store: EventStore, queue_size: int = 1000) -> None:
        self._store = store
        self._queue_size = queue_size
        self._subs: dict[str, set[Feed]] = {}
        self._follower: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closed = False
        self.follows = 0  # followers started so far

    @property
    def following(self) -> bool:
        return self._follower is not None

    async def subscribe(self, key: str = ALL) -> Feed:
        """A queue of the events of one aggregate id (or of all, with `ALL`) stored after this
        returns. A `None` in it means the feed ended: the subscriber fell too far behind, the
        log could not be followed, or the process is stopping."""
        queue: Feed = asyncio.Queue(self._queue_size)
        if self._closed:
            queue.put_nowait(None)
            return queue
        self._subs.setdefault(key, set()).add(queue)
        try:
            await asyncio.shield(self._start())
        except BaseException:
            self.unsubscribe(key, queue)
            raise
        return queue

    def unsubscribe(self, key: str, queue: Feed) -> None:
        subs = self._subs.get(key)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._subs[key]
        if not self._subs:
            self._stop_following()

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: then every feed ends."""
        try:
            await stop.wait()
        finally:
            self._closed = True
            follower = self._follower
            self.close()
            if follower is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await follower

    def close(self) -> None:
        """Tell every subscriber the feed has ended (their streams close)."""
        for key, queues in list(self._subs.items()):
            for queue in list(queues):
                self._end(key, queue)
        self._stop_following()

    def _start(self) -> asyncio.Future[None]:
        if self._ready is None:
            ready = self._ready = asyncio.get_running_loop().create_future()
            ready.add_done_callback(_retrieved)
            self._follower = asyncio.create_task(self._follow(ready), name="event-bus")
            self.follows += 1
        return self._ready

    def _stop_following(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
        self._follower = self._ready = None

    async def _follow(self, ready: asyncio.Future[None]) -> None:
        try:
            start = await self._store.head_seq() + 1
        except asyncio.CancelledError:
            ready.cancel()  # everyone left before it started: nobody waits for it
            raise
        except Exception as exc:
            ready.set_exception(exc)
            if self._ready is ready:
                self._follower = self._ready = None
            return
        ready.set_result(None)
        batches = self._store.tail_batches(start, max_batch=500, max_wait=0.0, idle=0.5)
        try:
            async for batch in batches:
                for item in batch:
                    if isinstance(item, StoredEvent):
                        self._deliver(item)
        except Exception:
            log.exception("the live event feed failed: its subscribers are told to reconnect")
            self.close()
        finally:
            with contextlib.suppress(Exception):
                await batches.aclose()

    def _end(self, key: str, queue: Feed) -> None:
        self.unsubscribe(key, queue)
        with contextlib.suppress(asyncio.QueueEmpty):
            while queue.full():
                queue.get_nowait()
        queue.put_nowait(None)

    def _deliver(self, item: StoredEvent) -> None:
        for key in (item.envelope.aggregate_id, ALL):
            for queue in list(self._subs.get(key, ())):
                try:
                    queue.put_nowait(item)
                except asyncio.QueueFull:
                    log.warning("dropping a live-event subscriber that fell behind")
                    self._end(key, queue)


def _retrieved(ready: asyncio.Future[None]) -> None:
    """The start's error reaches the subscribers that awaited it; this only keeps asyncio from
    also logging it as never retrieved when they have gone."""
    if not ready.cancelled():
        ready.exception()
