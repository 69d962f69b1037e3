"""The two shapes of database connection the folds and queries are written against.

`WriteDb` is what a writer thread hands a fold (`sqlite3.Connection`, or the PostgreSQL
adapter's translating connection); `ReadDb` is what the queries read through (an
`aiosqlite.Connection`, or the PostgreSQL reader). The SQL is ours, in SQLite's dialect;
the PostgreSQL adapter translates it (`adapters.postgres.dialect`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class WriteDb(Protocol):
    """A synchronous connection in autocommit mode (transactions are explicit statements)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Iterable[Any]: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> object: ...


class ReadCursor(Protocol):
    """The rows of one statement: iterated, the first one, or all of them."""

    def __aiter__(self) -> AsyncIterator[Any]: ...
    async def fetchone(self) -> Any: ...
    async def fetchall(self) -> Iterable[Any]: ...
    @property
    def description(self) -> Any: ...


class ReadDb(Protocol):
    """An asynchronous read connection: `async with db.execute(sql, args) as cursor`."""

    def execute(
        self, sql: str, parameters: Iterable[Any] | None = None
    ) -> AbstractAsyncContextManager[ReadCursor]: ...
