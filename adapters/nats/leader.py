"""The fencing generation: who the active Brain is, in a JetStream KV key, changed only by
compare-and-set so two Brains can never both believe they took the same generation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from adapters.nats.requests import JetStreamPublisher, PublishRefused
from adapters.nats.streams import LEADER_KEY, LEADER_STREAM

WRONG_LAST_SEQUENCE = 10071


class LeadershipTaken(Exception):
    """Someone else changed the leader record first."""


@dataclass(frozen=True)
class Leader:
    instance: str
    generation: int
    version: str
    since: str
    revision: int = 0  # stream sequence of the record

    @staticmethod
    def parse(data: bytes, revision: int) -> Leader | None:
        try:
            doc: dict[str, Any] = json.loads(data)
            return Leader(
                str(doc["instance"]), int(doc["generation"]), str(doc.get("version", "")),
                str(doc.get("since", "")), revision,
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None


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

    async def close(self) -> None:
        await self._publisher.close()
