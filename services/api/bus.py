"""One follower of the event log per process, fanning stored events out to SSE clients.

Only stored events are delivered (a publish that JetStream refused never reaches a client),
in stream order, with their sequence, so a client can join a replayed history to the live
feed without gaps or repeats.
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
        self.started = asyncio.Event()

    def subscribe(self, key: str = ALL) -> Feed:
        """A queue of the events of one aggregate id (or of all, with `ALL`). A `None` in it
        means the subscriber fell too far behind and was dropped."""
        queue: Feed = asyncio.Queue(self._queue_size)
        self._subs.setdefault(key, set()).add(queue)
        return queue

    def unsubscribe(self, key: str, queue: Feed) -> None:
        subs = self._subs.get(key)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._subs[key]

    async def run(self, stop: asyncio.Event) -> None:
        start = await self._store.head_seq() + 1
        self.started.set()
        batches = self._store.tail_batches(start, max_batch=500, max_wait=0.0, idle=0.5)
        try:
            async for batch in batches:
                for item in batch:
                    if isinstance(item, StoredEvent):
                        self._deliver(item)
                if stop.is_set():
                    return
        finally:
            with contextlib.suppress(Exception):
                await batches.aclose()
            self.close()

    def close(self) -> None:
        """Tell every subscriber the feed has ended (their streams close)."""
        for key, queues in list(self._subs.items()):
            for queue in list(queues):
                self._end(key, queue)

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
