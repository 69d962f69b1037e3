"""The read model in PostgreSQL with blue-green generations, as a `ReadModelStore`.

Each generation is a schema (`<prefix>_g<n>`) holding every read-model table. The schema
`<prefix>` is the stable face readers use: one view per table onto the current generation,
and the pointer `<prefix>.readmodel_generation`. `swap_in` repoints the views and the pointer
in one transaction, so a reader sees the old generation or the new one, never a mix; writers
(the projector) write the generation they opened and move when the pointer changes.
Schema names come from our own prefix and numbers, never from input.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from adapters.postgres.connection import (
    PgReadDb,
    PgReader,
    PgWriteDb,
    PgWriter,
    connect_async,
    redacted,
    search_path,
)
from adapters.postgres.schema import COMPAT, PG_DDL
from adapters.readmodel.port import ReadModelStore, StoreWriter
from projections.schema import ALL_TABLES
from projections.sql import ReadDb, WriteDb

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


class PgStore:
    def __init__(self, url: str, prefix: str = "baker") -> None:
        if not _NAME.match(prefix):
            raise ValueError(f"schema prefix {prefix!r}: lowercase letters, digits and _ only")
        self.url = url
        self.prefix = prefix
        self._generation = re.compile(rf"^{re.escape(prefix)}_g(\d+)$")
        self._meta: psycopg.AsyncConnection[Any] | None = None

    @property
    def label(self) -> str:
        return f"{redacted(self.url)} (schema {self.prefix})"

    async def _conn(self) -> psycopg.AsyncConnection[Any]:
        if self._meta is None or self._meta.closed:
            self._meta = await connect_async(self.url, autocommit=True)
        return self._meta

    async def initialise(self) -> None:
        conn = await self._conn()
        async with conn.transaction():
            await self._lock(conn)
            await self._ensure_base(conn)
            if await self._pointer(conn) is not None:
                return
            await _compat(conn, self.prefix)
            first = f"{self.prefix}_g1"
            await self._create_generation(conn, first)
            await conn.execute(f"SET LOCAL search_path = {first}")
            for statement in PG_DDL:
                await conn.execute(statement)
            await self._point(conn, first)

    async def _ensure_base(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The stable schema and its generation pointer (a rebuild may come first)."""
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.prefix}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.prefix}.readmodel_generation ("
            "one boolean PRIMARY KEY DEFAULT true CHECK (one), generation text NOT NULL)"
        )

    async def _lock(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Serialise our schema changes (two processes starting at once)."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.prefix,))

    async def _pointer(self, conn: psycopg.AsyncConnection[Any]) -> str | None:
        found = await conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{self.prefix}.readmodel_generation",)
        )
        exists = await found.fetchone()
        if not exists or not exists[0]:
            return None
        sql = f"SELECT generation FROM {self.prefix}.readmodel_generation"  # noqa: S608
        cursor = await conn.execute(sql)
        row = await cursor.fetchone()
        return str(row[0]) if row else None

    async def _create_generation(self, conn: psycopg.AsyncConnection[Any], name: str) -> None:
        await conn.execute(f"CREATE SCHEMA {name}")
        await _compat(conn, name)

    async def _point(self, conn: psycopg.AsyncConnection[Any], generation: str) -> None:
        """Repoint the views and the pointer at `generation` (inside the caller's transaction)."""
        for table in ALL_TABLES:
            await conn.execute(f"DROP VIEW IF EXISTS {self.prefix}.{table}")
            await conn.execute(
                f"CREATE VIEW {self.prefix}.{table} AS SELECT * FROM {generation}.{table}"  # noqa: S608
            )
        await conn.execute(
            f"INSERT INTO {self.prefix}.readmodel_generation (one, generation) "  # noqa: S608
            "VALUES (true, %s) "
            "ON CONFLICT (one) DO UPDATE SET generation = excluded.generation",
            (generation,),
        )

    async def current(self) -> str | None:
        return await self._pointer(await self._conn())

    async def _numbers(self, conn: psycopg.AsyncConnection[Any]) -> list[int]:
        cursor = await conn.execute("SELECT nspname FROM pg_namespace")
        names = [str(name) for (name,) in await cursor.fetchall()]
        return sorted(int(m.group(1)) for n in names if (m := self._generation.match(n)))

    async def next_generation(self) -> str:
        conn = await self._conn()
        async with conn.transaction():
            await self._lock(conn)
            await self._ensure_base(conn)
            name = f"{self.prefix}_g{max(await self._numbers(conn), default=0) + 1}"
            await self._create_generation(conn, name)
        return name

    async def swap_in(self, generation: str) -> None:
        conn = await self._conn()
        async with conn.transaction():
            await self._lock(conn)
            await self._point(conn, generation)

    async def prune(self, keep: int = 1) -> list[str]:
        conn = await self._conn()
        async with conn.transaction():
            await self._lock(conn)
            current = await self._pointer(conn)
            match = self._generation.match(current or "")
            if match is None:
                return []
            older = [n for n in await self._numbers(conn) if n < int(match.group(1))]
            doomed = [f"{self.prefix}_g{n}" for n in older[: max(0, len(older) - keep)]]
            for name in doomed:
                await conn.execute(f"DROP SCHEMA {name} CASCADE")
        return doomed

    async def open_writer(self, generation: str | None = None) -> StoreWriter:
        schema = generation or await self.current()
        if schema is None:
            raise RuntimeError(f"no read model in {self.label}: initialise it first")
        writer: Any = await PgWriter(self.url, schema).open()
        return writer  # type: ignore[no-any-return]

    def ensure_schema(self, db: WriteDb, *, indexes: bool = True) -> None:
        for statement in PG_DDL:
            if indexes or not statement.startswith("CREATE INDEX"):
                _raw(db).execute(statement)

    def bulk_mode(self, db: WriteDb) -> None:
        _writer(db).bulk = True
        _raw(db).execute("SET synchronous_commit = off")

    def live_mode(self, db: WriteDb) -> None:
        _writer(db).bulk = False
        self.ensure_schema(db)
        conn = _raw(db)
        for table in ALL_TABLES:
            conn.execute(f"ANALYZE {table}")
        conn.execute("SET synchronous_commit = on")

    def copy_from(self, db: WriteDb, generation: str) -> None:
        self.ensure_schema(db, indexes=False)
        conn = _raw(db)
        # One snapshot for every table: a projector committing meanwhile must not leave rows
        # past the copied checkpoints (they would be applied twice here).
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            for table in ALL_TABLES:
                conn.execute(f"INSERT INTO {table} SELECT * FROM {generation}.{table}")  # noqa: S608
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def reader(self) -> PgReader:
        return PgReader(self.url, self.prefix)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[ReadDb]:
        conn = await connect_async(self.url, **search_path(self.prefix))
        try:
            await conn.set_autocommit(False)
            await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
            yield PgReadDb(conn=conn)
        finally:
            await conn.close()

    @asynccontextmanager
    async def shadow(self) -> AsyncIterator[ReadModelStore]:
        shadow = PgStore(self.url, f"{self.prefix}_verify_{uuid.uuid4().hex[:8]}")
        try:
            yield shadow
        finally:
            conn = await shadow._conn()
            async with conn.transaction():
                for n in await shadow._numbers(conn):
                    await conn.execute(f"DROP SCHEMA IF EXISTS {shadow.prefix}_g{n} CASCADE")
                await conn.execute(f"DROP SCHEMA IF EXISTS {shadow.prefix} CASCADE")
            await shadow.close()

    async def close(self) -> None:
        if self._meta is not None:
            await self._meta.close()
            self._meta = None


async def _compat(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    for statement in COMPAT:
        await conn.execute(statement.format(schema=schema))


def _writer(db: WriteDb) -> PgWriteDb:
    if not isinstance(db, PgWriteDb):
        raise TypeError(f"not a PostgreSQL writer connection: {type(db).__name__}")
    return db


def _raw(db: WriteDb) -> psycopg.Connection[Any]:
    """The psycopg connection under a writer's `db` (our DDL is PostgreSQL already)."""
    return _writer(db).conn
