"""The inbox port over JetStream's `brain-tasks` pull consumer: the shared contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
from nats.aio.client import Client as NATS

from adapters.nats.inbox import NatsInbox, task_inbox
from tests.contract.inbox_contract import SUBJECT, InboxContract


class TestNatsInbox(InboxContract):
    @pytest.fixture
    async def inbox(self, provisioned: NATS) -> AsyncIterator[NatsInbox]:
        self.js = provisioned.jetstream()
        inbox = await task_inbox(provisioned)()
        yield inbox
        await inbox.close()

    async def put(self, data: bytes, headers: Mapping[str, str] | None = None) -> None:
        await self.js.publish(SUBJECT, data, headers=dict(headers) if headers else None)
