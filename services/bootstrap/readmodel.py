"""Which read-model store a process uses: PostgreSQL when `BAKER_DB` is a `postgresql://`
URL (`Settings.db_url`), else the SQLite file `Settings.db_path` (DESIGN §13)."""

from __future__ import annotations

from adapters.postgres.store import PgStore
from adapters.readmodel import ReadModelStore, SqliteStore
from services.config import Settings


def read_model_store(settings: Settings) -> ReadModelStore:
    """A new store handle (its owner closes it)."""
    if settings.db_url is not None:
        return PgStore(settings.db_url)
    return SqliteStore(settings.db_path)
