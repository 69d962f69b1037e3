"""The read model in a SQLite file with blue-green generations (`adapters.sqlite`), as a
`ReadModelStore`. Generations are named by their file name (`readmodel-<n>.db`)."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

from adapters.readmodel.port import ReadModelStore, StoreWriter
from adapters.sqlite import (
    ReadModel,
    Writer,
    bulk_mode,
    current_target,
    ensure_schema,
    initialise,
    live_mode,
    next_generation,
    open_db,
    prune,
    swap_in,
)
from projections.sql import ReadDb, WriteDb


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def label(self) -> str:
        return str(self.path)

    async def initialise(self) -> None:
        initialise(self.path)

    async def current(self) -> str | None:
        if not (self.path.is_symlink() or self.path.exists()):
            return None
        return current_target(self.path).name  # the file itself appears on first connect

    async def next_generation(self) -> str:
        return next_generation(self.path).name

    async def swap_in(self, generation: str) -> None:
        swap_in(self.path, self.path.parent / generation)

    async def prune(self, keep: int = 1) -> list[str]:
        return [p.name for p in prune(self.path, keep=keep)]

    async def open_writer(self, generation: str | None = None) -> StoreWriter:
        target = self.path if generation is None else self.path.parent / generation
        return cast(StoreWriter, await Writer(target).open())

    def ensure_schema(self, db: WriteDb, *, indexes: bool = True) -> None:
        ensure_schema(cast(sqlite3.Connection, db), indexes=indexes)

    def bulk_mode(self, db: WriteDb) -> None:
        bulk_mode(cast(sqlite3.Connection, db))

    def live_mode(self, db: WriteDb) -> None:
        live_mode(cast(sqlite3.Connection, db))

    def copy_from(self, db: WriteDb, generation: str) -> None:
        source = self.path.parent / generation
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            src.backup(cast(sqlite3.Connection, db))
        finally:
            src.close()

    def reader(self) -> ReadModel:
        return ReadModel(self.path)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[ReadDb]:
        db = await open_db(self.path, readonly=True)
        try:
            await db.execute("BEGIN")  # a snapshot: the projector may keep committing
            yield db
        finally:
            await db.close()

    @asynccontextmanager
    async def shadow(self) -> AsyncIterator[ReadModelStore]:
        with tempfile.TemporaryDirectory(prefix="baker-verify-") as tmp:
            yield SqliteStore(Path(tmp) / "shadow.db")

    async def close(self) -> None:
        return None
