"""Folding ahead (`projections.prepared`) on every read-model store: a batch folded from the
cached rows while the one before it is written leaves the read model exactly as
`apply_batch` does; one folded before another writer took a turn, or one that needs a row
from the database, is never written as folded: it goes the ordinary way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.readmodel import ReadModelStore, SqliteStore, StoreWriter
from projections.engine import BatchResult, apply_batch
from projections.prepared import prepare_batch, write_prepared
from projections.row_cache import RowCache
from projections.schema import PROJECTIONS
from services.projector import Projector, ProjectorSettings
from tests.contract.readmodel_contract import (
    SCENARIO,
    _prepare,
    answers,
    apply_in_batches,
    event_log,
    run_to_the_end,
    stored_events,
)


async def reference_answers(tmp_path: Path) -> dict[str, Any]:
    reference = SqliteStore(tmp_path / "reference.db")
    await reference.initialise()
    await apply_in_batches(reference, await stored_events(await event_log()))
    async with reference.snapshot() as db:
        found = await answers(db)
    await reference.close()
    return found


async def first_batch(
    rm: ReadModelStore, writer: StoreWriter, items: list[Any], cache: RowCache
) -> BatchResult:
    """`items` applied the ordinary way to an empty read model, filling `cache`."""
    await writer.run(lambda db: _prepare(rm, db))
    start = dict.fromkeys(PROJECTIONS, 0)
    return await writer.run(lambda db: apply_batch(db, items, start, cache=cache))


class FoldAheadContract:
    """Subclasses provide the fixture `rm`: an initialised, empty `ReadModelStore`."""

    async def test_the_projector_folds_ahead_and_writes_what_apply_batch_writes(
        self, rm: ReadModelStore, tmp_path: Path
    ) -> None:
        settings = ProjectorSettings(batch=3, max_wait=0, fold_ahead_from=1)
        projector = await run_to_the_end(Projector(await event_log(), rm, settings))
        # The first batch has nothing cached; every later one was folded ahead.
        assert projector.folded_ahead == projector.batches - 1 > 5
        async with rm.snapshot() as db:
            assert await answers(db) == await reference_answers(tmp_path)

    async def test_small_batches_are_folded_by_the_writer(
        self, rm: ReadModelStore, tmp_path: Path
    ) -> None:
        settings = ProjectorSettings(batch=3, max_wait=0)  # below `fold_ahead_from`
        projector = await run_to_the_end(Projector(await event_log(), rm, settings))
        assert projector.folded_ahead == 0 and projector.batches > 5
        async with rm.snapshot() as db:
            assert await answers(db) == await reference_answers(tmp_path)

    async def test_a_batch_folded_before_another_writers_turn_goes_the_ordinary_way(
        self, rm: ReadModelStore, tmp_path: Path
    ) -> None:
        items = await stored_events(await event_log())
        cache = RowCache()
        writer = await rm.open_writer()
        try:
            first = await first_batch(rm, writer, items[:8], cache)
            ahead = prepare_batch(items[8:16], first.checkpoints, cache)
            assert ahead is not None and ahead.result.checkpoints == dict.fromkeys(PROJECTIONS, 16)
            # Another projector applies events 9-12 first.
            await apply_in_batches(rm, items[:12], size=4, start=8)
            assert await writer.run(lambda db: write_prepared(db, ahead, cache)) is None
            assert len(cache) == 0  # forgotten: its rows are not the database's any more
            done = await writer.run(lambda db: apply_batch(db, items[8:], first.checkpoints))
            assert done.checkpoints == dict.fromkeys(PROJECTIONS, len(SCENARIO))
        finally:
            await writer.close()
        async with rm.snapshot() as db:
            assert await answers(db) == await reference_answers(tmp_path)

    async def test_a_batch_needing_a_stored_row_is_not_folded_ahead(
        self, rm: ReadModelStore
    ) -> None:
        items = await stored_events(await event_log())
        cache = RowCache()
        writer = await rm.open_writer()
        try:
            first = await first_batch(rm, writer, items[:4], cache)
        finally:
            await writer.close()
        assert prepare_batch(items[4:8], first.checkpoints, cache) is not None
        # A cache as of the right checkpoints that lacks job-1, whose next event is version 4.
        stale = RowCache()
        stale.stamp(first.checkpoints)
        assert prepare_batch(items[8:9], first.checkpoints, stale) is None
        assert not stale.follows(first.checkpoints)  # and nothing half-folded stays
