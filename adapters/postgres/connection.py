"""Connections to a PostgreSQL read model that speak our SQL (`adapters.postgres.dialect`).

`PgWriteDb` wraps a synchronous psycopg connection for the folds, on a writer thread of its
own (`PgWriter`, like `adapters.sqlite.Writer`): a whole batch is one call there. `executemany`
runs in psycopg's pipeline mode (one round trip for many rows) and statements run often are
prepared by the server. `PgReadDb` runs the queries on a pooled async connection (or on one
connection holding a snapshot) and hands back the rows with the cursor interface they use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import AsyncConnectionPool

from adapters.postgres.dialect import Staged, copy_statement, staged, to_postgres
from adapters.readmodel.port import ReadModelUnavailable

T = TypeVar("T")
STAGE_FROM = 64  # rows: below this, pipelined statements cost less than a staging table


def redacted(url: str) -> str:
    """`url` without its password, for messages and lease names."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=netloc))


def unreachable(url: str, exc: Exception) -> ReadModelUnavailable:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ReadModelUnavailable(f"the read model at {redacted(url)} is unreachable: {reason}")


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        raise unreachable(url, exc) from None


async def connect_async(url: str, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        raise unreachable(url, exc) from None


def search_path(schema: str) -> dict[str, Any]:
    """Connection arguments that make `schema` the one unqualified names resolve in."""
    return {"autocommit": True, "options": f"-c search_path={schema}"}


class PgWriteDb:
    """A `projections.sql.WriteDb` over a psycopg connection in autocommit mode. With `bulk`
    (a fresh generation nobody reads yet) rows of append-only tables go by COPY."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.bulk = False
        self._stages: set[str] = set()  # staging tables this connection has made

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        cursor = self.conn.cursor()
        args = tuple(parameters)
        if sql.strip().upper() == "ROLLBACK":
            self._stages.clear()  # made in this transaction, perhaps: undone with it
        for statement in to_postgres(sql):
            if args or "%" in statement:
                cursor.execute(statement, args)  # parsed: `%%` means `%`
            else:  # sent as it is, several statements in one round trip
                cursor.execute(statement)
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> object:
        rows = list(parameters)
        if not rows:
            return None
        copy = copy_statement(sql) if self.bulk else None
        if copy is not None:
            with self.conn.cursor().copy(copy) as pipe:
                for row in rows:
                    pipe.write_row(row)
            return None
        plan = staged(sql) if len(rows) >= STAGE_FROM else None
        if plan is not None:
            self._stage(plan, rows)
            return None
        (statement,) = to_postgres(sql)
        self.conn.cursor().executemany(statement, rows)
        return None

    def _stage(self, plan: Staged, rows: list[Sequence[Any]]) -> None:
        rows = plan.distinct(rows)
        if plan.direct is not None and self._copy_new(plan.direct, rows):
            return
        cursor = self.conn.cursor()
        if plan.stage not in self._stages:
            cursor.execute(plan.create)
            self._stages.add(plan.stage)
        with cursor.copy(plan.copy) as pipe:
            for row in rows:
                pipe.write_row(row)
        cursor.execute(plan.merge)

    def _copy_new(self, copy: str, rows: list[Sequence[Any]]) -> bool:
        """COPY rows that should all be new; False (and nothing written) if one was not."""
        try:
            with self.conn.transaction(), self.conn.cursor().copy(copy) as pipe:
                for row in rows:
                    pipe.write_row(row)
        except psycopg.errors.UniqueViolation:
            return False
        return True


class PgWriter:
    """The read model's writing connection on a thread of its own (one hop per batch)."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baker-postgres")
        self._db: PgWriteDb | None = None

    async def open(self) -> PgWriter:
        conn = await self._call(lambda: connect(self.url, **search_path(self.schema)))
        self._db = PgWriteDb(conn)
        return self

    async def run(self, fn: Callable[[PgWriteDb], T]) -> T:
        db = self._db
        if db is None:
            raise RuntimeError(f"the writer of schema {self.schema} is not open")
        return await self._call(lambda: fn(db))

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def close(self) -> None:
        db, self._db = self._db, None
        try:
            if db is not None:
                await self._call(db.conn.close)
        finally:
            self._pool.shutdown(wait=False)


class Rows:
    """A statement's fetched rows with the cursor interface the queries use."""

    def __init__(self, rows: list[Any], description: Any) -> None:
        self.rows = rows
        self.description = description

    async def __aenter__(self) -> Rows:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._each()

    async def _each(self) -> AsyncIterator[Any]:
        for row in self.rows:
            yield row

    async def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    async def fetchall(self) -> list[Any]:
        return self.rows


class _Statement:
    def __init__(self, run: Callable[[], Any]) -> None:
        self._run = run

    async def __aenter__(self) -> Rows:
        rows: Rows = await self._run()
        return rows

    async def __aexit__(self, *exc: object) -> None:
        return None


class PgReadDb:
    """A `projections.sql.ReadDb` on a pool (a connection per statement) or on one
    connection (a snapshot: every statement in its transaction)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> None:
        self.pool = pool
        self.conn = conn

    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Statement:
        (statement,) = to_postgres(sql)
        args = tuple(parameters or ())
        return _Statement(lambda: self._fetch(statement, args))

    async def _fetch(self, statement: str, args: tuple[Any, ...]) -> Rows:
        if self.conn is not None:
            return await _rows(self.conn, statement, args)
        assert self.pool is not None
        async with self.pool.connection() as conn:
            return await _rows(conn, statement, args)


async def _rows(conn: psycopg.AsyncConnection[Any], statement: str, args: tuple[Any, ...]) -> Rows:
    cursor = await conn.execute(statement, args)
    if cursor.description is None:
        return Rows([], None)
    names = tuple((c.name, None, None, None, None, None, None) for c in cursor.description)
    return Rows(await cursor.fetchall(), names)


class PgReader:
    """The API's reader: a small pool whose connections read the stable schema of views,
    which a swap repoints in one transaction (nothing to follow here)."""

    def __init__(self, url: str, schema: str, max_size: int = 4) -> None:
        self._url, self._schema = url, schema
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, kwargs=search_path(schema), open=False
        )
        self._opened = False
        self._lock = asyncio.Lock()

    async def db(self) -> PgReadDb:
        if not self._opened:
            async with self._lock:
                if not self._opened:
                    # One plain connection first: a database that cannot be reached is named
                    # at once, with the reason, instead of after the pool's 30 s of retries.
                    await (await connect_async(self._url, **search_path(self._schema))).close()
                    await self._pool.open(wait=True)
                    self._opened = True
        return PgReadDb(self._pool)

    async def applied(self) -> int:
        async with (await self.db()).execute("SELECT min(last_seq) FROM checkpoints") as cursor:
            row = await cursor.fetchone()
        return int(row[0] or 0) if row else 0

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False
