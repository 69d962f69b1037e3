"""What the projector, rebuild/verify/as-of and the API need of a read model's storage.

A read model lives in generations (blue-green): the current one is read and written; a
rebuild fills the next one beside it and `swap_in` makes it current in one atomic step, so
readers never see a half-built read model. The folds run on a `StoreWriter` (one transaction
per batch, checkpoints included); the queries read through a `Reader`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from projections.sql import ReadDb, WriteDb

T = TypeVar("T")


class ReadModelUnavailable(Exception):
    """The read model's database cannot be reached; the message names it (never a password)
    and says why."""


class StoreWriter(Protocol):
    """A writing connection on a thread of its own: `run(fn)` calls `fn(db)` there."""

    async def run(self, fn: Callable[[WriteDb], T]) -> T: ...
    async def close(self) -> None: ...


class Reader(Protocol):
    """The API's read-only view of the current generation (follows swaps)."""

    async def db(self) -> ReadDb: ...
    async def applied(self) -> int: ...
    async def close(self) -> None: ...


class ReadModelStore(Protocol):
    """One read model: its generations, writers, readers and throwaway shadows."""

    @property
    def label(self) -> str:
        """Where it is, for messages (a path, or a URL without its password)."""
        ...

    async def initialise(self) -> None:
        """Make sure a current generation exists (an empty one the first time)."""

    async def current(self) -> str | None:
        """The current generation's name; None before `initialise`."""

    async def next_generation(self) -> str:
        """Reserve a fresh generation for a rebuild (nobody reads it until `swap_in`)."""

    async def swap_in(self, generation: str) -> None:
        """Make `generation` current atomically; open readers move to it."""

    async def prune(self, keep: int = 1) -> list[str]:
        """Remove generations older than the current one but the `keep` newest."""

    async def open_writer(self, generation: str | None = None) -> StoreWriter:
        """A writer on `generation` (default: the current one)."""

    def ensure_schema(self, db: WriteDb, *, indexes: bool = True) -> None:
        """Create missing tables (and, unless told otherwise, secondary indexes)."""

    def bulk_mode(self, db: WriteDb) -> None:
        """For a generation nobody reads yet: trade durability for speed until `live_mode`."""

    def live_mode(self, db: WriteDb) -> None:
        """Back to durable writes, with every index in place."""

    def copy_from(self, db: WriteDb, generation: str) -> None:
        """Fill the writer's generation with a copy of `generation`'s tables."""

    def reader(self) -> Reader:
        """A reader for the API (opened lazily, closed by its owner)."""

    def snapshot(self) -> AbstractAsyncContextManager[ReadDb]:
        """A consistent read of the current generation while writers go on (verify)."""

    def shadow(self) -> AbstractAsyncContextManager[ReadModelStore]:
        """An empty, throwaway store of the same kind, removed on exit (verify)."""

    async def close(self) -> None:
        """Release what the store itself holds open."""
