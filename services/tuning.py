"""Process tuning for long-running daemons."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Move everything loaded at start-up out of the collector's sight and collect young
    objects less often: daemons allocate many short-lived message objects, and the default
    thresholds spend a noticeable share of CPU re-scanning long-lived ones."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
