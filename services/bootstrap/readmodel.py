"""Which read-model store a process uses: PostgreSQL when `BAKER_DB` is a `postgresql://`
URL (`Settings.db_url`), else the SQLite file `Settings.db_path` (DESIGN §13)."""

from __future__ import annotations

import os

from adapters.postgres.store import PgStore
from adapters.readmodel import ReadModelStore, SqliteStore
from services.config import Settings


def read_model_store(settings: Settings) -> ReadModelStore:
    """A new store handle (its owner closes it)."""
    if settings.db_url is not None:
        return PgStore(settings.db_url)
    return SqliteStore(settings.db_path)


def read_model_location(settings: Settings, host: str) -> str:
    """Where a read model is, as its projectors' lease names it (DESIGN §13). A PostgreSQL one
    is its URL without the password (every host shares it); a SQLite one is this host and the
    file's real path (the link `BAKER_DB`, not the generation it points at, which a rebuild
    changes), so hosts with their own files do not hold each other back."""
    if settings.db_url is not None:
        return f"postgresql:{PgStore(settings.db_url).label}"
    path = settings.db_path
    return f"sqlite:{host}:{os.path.realpath(path.parent)}/{path.name}"
