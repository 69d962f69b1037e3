"""The projector's row cache: trusted only as of the checkpoints it was stamped with, forgotten
on any difference, and a fold pinned to an epoch that was forgotten cannot put rows back."""

from __future__ import annotations

from projections.row_cache import RowCache


def test_rows_are_kept_and_read_back_with_the_ids_still_missing() -> None:
    cache = RowCache()
    cache.put("jobs", {"a": {"id": "a"}, "b": {"id": "b"}})
    found, missing = cache.take("jobs", ["a", "c"])
    assert found == {"a": {"id": "a"}} and missing == {"c"}
    assert cache.take("tasks", ["a"]) == ({}, {"a"})
    assert (cache.hits, cache.misses) == (1, 2)


def test_rows_are_trusted_only_as_of_their_stamp() -> None:
    cache = RowCache()
    cache.put("jobs", {"a": {"id": "a"}})
    assert not cache.follows({"jobs": 0})  # never stamped
    cache.stamp({"jobs": 10, "tasks": 10})
    assert cache.follows({"jobs": 10}) and cache.follows({"jobs": 10, "tasks": 10})
    cache.begin({"jobs": 10, "tasks": 10})
    assert len(cache) == 1
    cache.begin({"jobs": 12, "tasks": 10})  # another writer took a turn
    assert len(cache) == 0 and not cache.follows({"jobs": 12})


def test_a_fold_pinned_before_the_cache_was_forgotten_puts_nothing() -> None:
    cache = RowCache()
    pinned = cache.pinned()
    cache.clear()
    pinned.put("jobs", {"a": {"id": "a"}})
    cache.stamp({"jobs": 3}, pinned.epoch)
    assert len(cache) == 0 and not cache.follows({"jobs": 3})
    fresh = cache.pinned()
    fresh.put("jobs", {"a": {"id": "a"}})
    cache.stamp({"jobs": 3}, fresh.epoch)
    assert len(cache) == 1 and cache.follows({"jobs": 3})


def test_the_least_recently_put_rows_go_first() -> None:
    cache = RowCache(limit=2)
    cache.put("jobs", {"a": {}, "b": {}})
    cache.put("jobs", {"a": {"n": 1}, "c": {}})
    found, missing = cache.take("jobs", ["a", "b", "c"])
    assert set(found) == {"a", "c"} and missing == {"b"}
