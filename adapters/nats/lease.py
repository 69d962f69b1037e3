"""Leases in the `baker-leases` JetStream KV bucket (port `services.ports.lease.LeaseRecords`):
a read is a direct get of the key's last value, a change a publish with
`Nats-Expected-Last-Subject-Sequence` (0: the key must have no value yet), so the server refuses
a change made on top of a value that is no longer the current one."""

from __future__ import annotations

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.message import JetStreamError
from adapters.nats.publisher import JetStreamPublisher
from adapters.nats.streams import LEASES_PREFIX, LEASES_STREAM
from domain.lease import Lease, LeaseTaken

WRONG_LAST_SEQUENCE = 10071


class JetStreamLeases:
    def __init__(self, client: Client, *, retry_for: float = 2.0) -> None:
        """`retry_for`: how long one change is retried while the server does not answer (a
        lease is renewed every few seconds: a change later than that is of no use)."""
        self.client = client
        self._publisher = JetStreamPublisher(client, retry_for=retry_for)

    async def read(self, key: str) -> Lease | None:
        msg = await jsapi.direct_get(self.client, LEASES_STREAM, {"last_by_subj": _subject(key)})
        if msg is None:
            return None
        revision = int(msg.headers["Nats-Sequence"]) if msg.headers else 0
        return Lease.parse(msg.data, revision)

    async def create(self, key: str, lease: Lease) -> Lease:
        return await self._store(key, lease, 0)

    async def update(self, key: str, lease: Lease, revision: int) -> Lease:
        return await self._store(key, lease, revision)

    async def _store(self, key: str, lease: Lease, expected: int) -> Lease:
        headers = {"Nats-Expected-Last-Subject-Sequence": str(expected)}
        try:
            ack = await self._publisher.publish(_subject(key), lease.encode(), headers)
        except JetStreamError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise LeaseTaken(f"lease {key}: {exc.description}") from exc
            raise
        return Lease(lease.holder, lease.expires, lease.host, ack.seq)

    async def close(self) -> None:
        """Nothing to release: requests share the client's reply subscription."""


def _subject(key: str) -> str:
    return f"{LEASES_PREFIX}.{key}"
