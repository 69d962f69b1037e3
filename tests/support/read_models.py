"""A read model for tests that run `baker` processes: a SQLite file or a real PostgreSQL
database (`tests.support.postgres`), as `BAKER_DB` names it, with what those tests read
back: the applied checkpoint (polled) and the store itself for the queries."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from adapters.postgres.store import PgStore
from adapters.readmodel import ReadModelStore, SqliteStore

KINDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class ReadModel:
    kind: str
    location: str  # the value of BAKER_DB

    def checkpoint(self) -> int:
        """The lowest projection checkpoint now (0 before the read model exists)."""
        if self.kind == "sqlite":
            return sqlite_checkpoint(Path(self.location))
        with psycopg.connect(self.location, autocommit=True) as conn:
            found = conn.execute("SELECT to_regclass('baker.checkpoints') IS NOT NULL")
            if not (row := found.fetchone()) or not row[0]:
                return 0
            seq = conn.execute("SELECT min(last_seq) FROM baker.checkpoints").fetchone()
        return int(seq[0] or 0) if seq else 0

    def store(self) -> ReadModelStore:
        if self.kind == "sqlite":
            return SqliteStore(Path(self.location))
        return PgStore(self.location)


def sqlite_checkpoint(path: Path) -> int:
    """The lowest projection checkpoint of a SQLite read model (0 before it exists)."""
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute("SELECT min(last_seq) FROM checkpoints").fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(rows[0] or 0)


@pytest.fixture(params=KINDS)
def read_model(request: pytest.FixtureRequest, tmp_path: Path) -> ReadModel:
    """Each test that takes it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return ReadModel("sqlite", str(tmp_path / "readmodel.db"))
    return ReadModel("postgresql", request.getfixturevalue("postgres_url"))
