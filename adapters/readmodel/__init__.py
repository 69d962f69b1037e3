"""The read-model storage port and its SQLite implementation (PostgreSQL: `adapters.postgres`)."""

from adapters.readmodel.port import Reader, ReadModelStore, ReadModelUnavailable, StoreWriter
from adapters.readmodel.sqlite_store import SqliteStore

__all__ = ["ReadModelStore", "ReadModelUnavailable", "Reader", "SqliteStore", "StoreWriter"]
