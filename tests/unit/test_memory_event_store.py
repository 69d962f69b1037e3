"""The in-memory event store passes the same storage contract as the JetStream one, and the
command executor its contract over it."""

from __future__ import annotations

import pytest

from adapters.eventstore import InMemoryEventStore
from tests.contract.event_store_contract import EventStoreContract
from tests.contract.executor_contract import ExecutorContract


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()

    async def other_writer(self, store: InMemoryEventStore) -> InMemoryEventStore:
        return store.sharing()

    async def put_raw(self, store: InMemoryEventStore, subject: str, data: bytes) -> int:
        return store.put_raw(subject, data)


class TestExecutorOnTheInMemoryStore(ExecutorContract):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()

    async def other_writer(self, store: InMemoryEventStore) -> InMemoryEventStore:
        return store.sharing()
