"""Process tuning for long-running daemons."""

from __future__ import annotations

import gc
import sys


def tune_gc() -> None:
    """Move everything loaded at start-up out of the collector's sight and collect young
    objects less often: daemons allocate many short-lived message objects, and the default
    thresholds spend a noticeable share of CPU re-scanning long-lived ones."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


PROJECTOR_SWITCH_INTERVAL = 0.0005  # seconds


def tune_projector_threads() -> None:
    """The projector reads and decodes on the event loop, folds a batch ahead on a thread and
    writes on the writer's thread, which mostly waits for the database. When the database
    answers, the writer needs the interpreter lock back; with the default switch interval
    (5 ms) it may wait that long for the decoding and folding threads, several times a batch.
    Half a millisecond lets it go on almost at once (`python -m bench projector-pg`: about a
    tenth more events a second). For a `baker projector` process writing to PostgreSQL only:
    on SQLite it measured a few per cent slower, and the Brain, which serves the API too,
    keeps the default."""
    sys.setswitchinterval(PROJECTOR_SWITCH_INTERVAL)
