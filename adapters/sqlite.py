"""Opening the read-model SQLite file, and swapping in a rebuilt one (blue-green).

`BAKER_DB` (e.g. `readmodel.db`) is a symbolic link to the current generation
(`readmodel-<n>.db`); SQLite follows the link, so each generation keeps its own WAL files. A
rebuild writes generation n+1 next to it and then replaces the link atomically: connections
already open keep reading generation n until they notice the swap and reopen.

After the swap, generations older than n are removed (`prune`). Generation n itself is kept:
a connection opened on it just before the swap that has not read yet would fail its first read
(SQLite answers "disk I/O error" once the file is gone), and an operator can point the link
back at it. A connection that has read keeps reading its open copy of a removed file (POSIX),
and nobody opens a removed name again: the link never points back at it, numbers only grow.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import aiosqlite

from projections.schema import DDL

T = TypeVar("T")
WAL = "PRAGMA journal_mode=WAL"
SWITCH_WAIT = 5.0  # seconds, as long as SQLite's own busy timeout here
SWITCH_RETRY = 0.01
PRAGMAS = (  # the switch to WAL first (`connect_writer` relies on it)
    WAL,
    "PRAGMA synchronous=NORMAL",  # with WAL: a crash loses no committed transaction
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=OFF",
)


async def open_db(path: Path, *, readonly: bool = False) -> aiosqlite.Connection:
    """A connection in autocommit mode (transactions are explicit) with our pragmas."""
    db = await aiosqlite.connect(_uri(path, readonly), uri=readonly, isolation_level=None)
    for pragma in PRAGMAS if not readonly else PRAGMAS[2:]:
        await db.execute(pragma)
    return db


def _uri(path: Path, readonly: bool) -> str:
    target = current_target(path)
    return f"file:{target}?mode=ro" if readonly else str(target)


def connect_writer(path: Path) -> sqlite3.Connection:
    """A read-write connection in autocommit mode (transactions are explicit) with our pragmas,
    for the thread it is opened on."""
    db = sqlite3.connect(current_target(path), isolation_level=None)
    _switch_to_wal(db)
    for pragma in PRAGMAS[1:]:
        db.execute(pragma)
    return db


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """Writers opening one file at the same moment (two projectors starting together) all
    switch it to WAL: SQLite refuses the switch to all but one with "database is locked",
    without waiting (its busy handler is skipped where waiting could deadlock), and once the
    other's switch is done ours is a no-op, so it is asked again, for a while."""
    deadline = time.monotonic() + SWITCH_WAIT
    while True:
        try:
            db.execute(WAL)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(SWITCH_RETRY)


def ensure_schema(db: sqlite3.Connection, *, indexes: bool = True) -> None:
    """Create missing tables (and, unless told otherwise, their secondary indexes)."""
    for statement in DDL:
        if indexes or not statement.startswith("CREATE INDEX"):
            db.execute(statement)


def bulk_mode(db: sqlite3.Connection) -> None:
    """For a file nobody reads yet (a rebuild): journal in memory, no syncs until `live_mode`."""
    db.execute("PRAGMA journal_mode=MEMORY")
    db.execute("PRAGMA synchronous=OFF")


def live_mode(db: sqlite3.Connection) -> None:
    """Back to WAL with normal syncing, with every index in place."""
    ensure_schema(db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")


class Writer:
    """The read model's writing connection on a thread of its own: `run(fn)` calls `fn(db)`
    there and awaits it, one hop per call, so a whole batch (its transaction, reads, folds and
    writes) costs one hop, and the event loop never waits on SQLite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baker-sqlite")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> Writer:
        self._db = await self._call(lambda: connect_writer(self.path))
        return self

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise RuntimeError(f"the writer of {self.path} is not open")
        return await self._call(lambda: fn(db))

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def close(self) -> None:
        """Close the connection and end the thread (an idle one would keep the process up)."""
        db, self._db = self._db, None
        try:
            if db is not None:
                await self._call(db.close)
        finally:
            self._pool.shutdown(wait=False)


def current_target(path: Path) -> Path:
    """The generation file `path` points at (`path` itself when it is a plain file)."""
    if path.is_symlink():
        return (path.parent / os.readlink(path)).resolve()
    return path


def generations(path: Path) -> list[tuple[int, Path]]:
    """The generation files of `path` beside it, oldest first, with their numbers."""
    stem, suffix = path.stem, path.suffix or ".db"
    pattern = re.compile(rf"^{re.escape(stem)}-(\d+){re.escape(suffix)}$")
    found = [
        (int(m.group(1)), p)
        for p in path.parent.glob(f"{stem}-*{suffix}")
        if (m := pattern.match(p.name))
    ]
    return sorted(found)


def next_generation(path: Path) -> Path:
    """A fresh file name for the next generation of `path`."""
    numbers = [n for n, _ in generations(path)]
    stem, suffix = path.stem, path.suffix or ".db"
    return path.parent / f"{stem}-{max(numbers, default=0) + 1}{suffix}"


def prune(path: Path, keep: int = 1) -> list[Path]:
    """Remove the generations older than the current one except the `keep` newest of them;
    newer ones (a rebuild still writing) are never touched. Returns what was removed."""
    current = current_target(path)
    numbered = generations(path)
    mine = [n for n, p in numbered if p.resolve() == current]
    if not mine:
        return []  # the link does not point at a generation: nothing is known to be superseded
    older = [p for n, p in numbered if n < mine[0]]
    doomed = older[: max(0, len(older) - keep)]
    for generation in doomed:
        discard(generation)
    return doomed


def initialise(path: Path) -> Path:
    """Make `path` a link to a generation file, creating generation 1 if nothing exists yet.
    A plain file left by an older version is kept as it is (it is swapped out later)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        return current_target(path)
    first = next_generation(path)
    swap_in(path, first)
    return first


def swap_in(path: Path, generation: Path) -> None:
    """Point `path` at `generation` atomically (rename of a new link over the old one)."""
    tmp = path.parent / f".{path.name}.swap-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(generation.name)
    os.replace(tmp, path)


def discard(generation: Path) -> None:
    """Remove a generation file and its WAL companions (open readers keep their copy)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{generation}{suffix}").unlink(missing_ok=True)


@asynccontextmanager
async def connected(path: Path, *, readonly: bool = False) -> AsyncIterator[aiosqlite.Connection]:
    """`open_db` as a context manager that always closes the connection."""
    db = await open_db(path, readonly=readonly)
    try:
        yield db
    finally:
        await db.close()


class ReadModel:
    """A read-only connection to the read model that follows blue-green swaps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._target: Path | None = None

    async def db(self) -> aiosqlite.Connection:
        """The connection to the current generation (reopened after a swap)."""
        target = current_target(self.path)
        if self._db is None or target != self._target:
            old, self._db = self._db, await open_db(self.path, readonly=True)
            self._target = target
            if old is not None:
                await old.close()
        return self._db

    async def applied(self) -> int:
        """The lowest projection checkpoint: everything up to it is in the read model."""
        async with (await self.db()).execute("SELECT min(last_seq) FROM checkpoints") as cursor:
            row = await cursor.fetchone()
        return int(row[0] or 0) if row else 0

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
