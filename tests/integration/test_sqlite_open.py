"""Writers opening one SQLite read model at the same moment (two projectors starting together,
the read-model contract's two writers) each get a connection in WAL mode: the switch to WAL
that SQLite refuses at once to all but one of them ("database is locked", without waiting) is
asked again until the other's switch is done."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from adapters.sqlite import connect_writer

OPENERS = 4
ROUNDS = 50  # about one round in twelve failed before the switch was asked again


def open_at_once(path: Path) -> tuple[list[str], list[Exception]]:
    """`OPENERS` threads open a writer on `path` at one moment: each one's journal mode, and
    what failed."""
    start = threading.Barrier(OPENERS)
    modes: list[str] = []
    failures: list[Exception] = []

    def open_it() -> None:
        start.wait()
        try:
            db = connect_writer(path)
            modes.append(db.execute("PRAGMA journal_mode").fetchone()[0])
            db.close()
        except Exception as exc:
            failures.append(exc)

    openers = [threading.Thread(target=open_it) for _ in range(OPENERS)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join()
    return modes, failures


def test_writers_opening_a_new_file_at_once_all_get_it_in_wal_mode(tmp_path: Path) -> None:
    for n in range(ROUNDS):
        path = tmp_path / f"readmodel-{n}.db"
        made = sqlite3.connect(path)  # a rollback-journal file: nobody switched it yet
        made.execute("CREATE TABLE t (x)")
        made.commit()
        made.close()
        modes, failures = open_at_once(path)
        assert not failures, failures
        assert modes == ["wal"] * OPENERS
