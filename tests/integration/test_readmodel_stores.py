"""The read-model contract on SQLite and on a real PostgreSQL (a database of its own, dropped
afterwards; skipped, saying why, only when no PostgreSQL answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.postgres.store import PgStore
from adapters.readmodel import SqliteStore
from tests.contract.fold_ahead_contract import FoldAheadContract
from tests.contract.readmodel_contract import ReadModelContract
from tests.support.postgres import postgres_url

__all__ = ["postgres_url"]


class TestSqliteReadModel(ReadModelContract, FoldAheadContract):
    @pytest.fixture
    async def rm(self, tmp_path: Path) -> AsyncIterator[SqliteStore]:
        store = SqliteStore(tmp_path / "readmodel.db")
        await store.initialise()
        yield store
        await store.close()


class TestPostgresReadModel(ReadModelContract, FoldAheadContract):
    @pytest.fixture
    async def rm(self, postgres_url: str) -> AsyncIterator[PgStore]:
        store = PgStore(postgres_url)
        await store.initialise()
        yield store
        await store.close()
