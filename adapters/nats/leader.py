"""The fencing generation: who the active Brain is, in a JetStream KV key, changed only by
compare-and-set so two Brains can never both believe they took the same generation
(`LeaderRecords` port, `services.ports.leader`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from adapters.nats.requests import JetStreamPublisher, PublishRefused
from adapters.nats.streams import LEADER_KEY, LEADER_STREAM
from domain.handoff import Leader, LeadershipTaken

__all__ = ["Leader", "LeaderRecord", "LeadershipTaken"]
log = logging.getLogger("baker.brain.leadership")
WRONG_LAST_SEQUENCE = 10071


class LeaderRecord:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._js = nc.jetstream()
        self._publisher = JetStreamPublisher(nc, retry_for=10.0)

    async def read(self) -> Leader | None:
        try:
            msg = await self._js.get_last_msg(LEADER_STREAM, LEADER_KEY)
        except NotFoundError:
            return None
        return Leader.parse(msg.data or b"", int(msg.seq or 0))

    async def take(self, instance: str, version: str, after: Leader | None) -> Leader:
        """Become leader with generation `after.generation + 1`, if `after` is still current."""
        generation = (after.generation if after else 0) + 1
        since = datetime.now(UTC).isoformat()
        body = json.dumps(
            {"instance": instance, "generation": generation, "version": version, "since": since}
        )
        expected = str(after.revision if after else 0)
        try:
            seq, _ = await self._publisher.publish(
                LEADER_KEY, body.encode(), {"Nats-Expected-Last-Subject-Sequence": expected}
            )
        except PublishRefused as exc:
            if exc.code == WRONG_LAST_SEQUENCE:
                raise LeadershipTaken(f"the leader record changed: {exc.description}") from exc
            raise
        return Leader(instance, generation, version, since, seq)

    async def watch(self, on_record: Callable[[Leader], Awaitable[None]]) -> Subscription:
        """Follow the record with an ordered consumer: its last value, then every *stored*
        change in order (the client repairs gaps), so a refused compare-and-set is never
        mistaken for a change."""

        async def delivered(msg: Msg) -> None:
            leader = Leader.parse(msg.data, int(msg.metadata.sequence.stream))
            if leader is None:
                log.error("unreadable leader record on %s: ignored", msg.subject)
                return
            await on_record(leader)

        sub: Subscription = await self._js.subscribe(
            LEADER_KEY,
            stream=LEADER_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            cb=delivered,
        )
        return sub

    async def close(self) -> None:
        await self._publisher.close()
