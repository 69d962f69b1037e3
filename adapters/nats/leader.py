"""The fencing generation: who the active Brain is, in a JetStream KV key, changed only by
compare-and-set so two Brains can never both believe they took the same generation
(`LeaderRecords` port, `services.ports.leader`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.message import JetStreamError
from adapters.nats.publisher import JetStreamPublisher
from adapters.nats.reader import OrderedReader
from adapters.nats.streams import LEADER_KEY, LEADER_STREAM
from domain.handoff import Leader, LeadershipTaken

__all__ = ["Leader", "LeaderRecord", "LeadershipTaken"]
log = logging.getLogger("baker.brain.leadership")
WRONG_LAST_SEQUENCE = 10071
OnRecord = Callable[[Leader], Awaitable[None]]


class LeaderRecord:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._publisher = JetStreamPublisher(client, retry_for=10.0)

    async def read(self) -> Leader | None:
        msg = await jsapi.direct_get(self.client, LEADER_STREAM, {"last_by_subj": LEADER_KEY})
        if msg is None:
            return None
        return Leader.parse(msg.data, int(msg.headers["Nats-Sequence"]))

    async def take(self, instance: str, version: str, after: Leader | None) -> Leader:
        """Become leader with generation `after.generation + 1`, if `after` is still current."""
        generation = (after.generation if after else 0) + 1
        since = datetime.now(UTC).isoformat()
        body = json.dumps(
            {"instance": instance, "generation": generation, "version": version, "since": since}
        )
        expected = str(after.revision if after else 0)
        try:
            ack = await self._publisher.publish(
                LEADER_KEY, body.encode(), {"Nats-Expected-Last-Subject-Sequence": expected}
            )
        except JetStreamError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise LeadershipTaken(f"the leader record changed: {exc.description}") from exc
            raise
        return Leader(instance, generation, version, since, ack.seq)

    async def watch(self, on_record: OnRecord) -> Watch:
        """Follow the record from the stream: its last value, then every *stored* change in
        order (a core subscription would also hear a refused compare-and-set, and could not
        tell it from a change)."""
        reader = OrderedReader(
            self.client, LEADER_STREAM, start_seq=None, filter_subject=LEADER_KEY
        )
        return Watch(reader, on_record)

    async def close(self) -> None:
        """Nothing to release: requests share the client's reply subscription."""


class Watch:
    """The watch's reading loop; `unsubscribe` stops it (the port's `Subscription`)."""

    POLL = 5.0  # seconds a pull waits for a change before asking again

    def __init__(self, reader: OrderedReader, on_record: OnRecord) -> None:
        self._reader = reader
        self._on_record = on_record
        self._task = asyncio.create_task(self._follow(), name="baker-leader-watch")

    async def _follow(self) -> None:
        while True:
            try:
                got = await self._reader.fetch(16, wait=self.POLL)
            except Exception as exc:  # the server away for long: the confirming reads age
                log.warning("watching the leader record failed, trying again: %r", exc)
                await asyncio.sleep(1.0)  # back-off before asking the server again
                continue
            for seq, _, msg in got:
                leader = Leader.parse(msg.data, seq)
                if leader is None:
                    log.error("unreadable leader record on %s: ignored", msg.subject)
                    continue
                try:
                    await self._on_record(leader)
                except Exception:
                    log.exception("handling the leader record failed")

    async def unsubscribe(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._reader.close()
