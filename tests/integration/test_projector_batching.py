"""Batches of "up to N events or T ms" on a real nats-server: `tail_batches` keeps a batch open
for `max_wait` after its first event, closes it early when it is full, and the projector's
`ProjectorSettings.max_wait` and `batch` reach it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from adapters.eventstore import BadEvent, StoredEvent
from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import EVENTS_STREAM
from domain.commands import DispatchJob
from domain.specs import parse_job_spec
from projections.prepared import PreparedBatch
from services.executor import CommandExecutor
from services.projector import Projector, ProjectorSettings
from tests.polling import until

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})
Batch = list[StoredEvent | BadEvent]


@pytest.fixture
async def store(provisioned: Client) -> AsyncIterator[JetStreamEventStore]:
    s = JetStreamEventStore(provisioned)
    yield s
    await s.close()


async def dispatch(store: JetStreamEventStore, *ids: str) -> None:
    executor = CommandExecutor(store)
    for job_id in ids:
        await executor.execute("job", job_id, DispatchJob(spec=SPEC), new=True)


async def delivered(nc: NATS, seq: int, timeout: float = 10.0) -> None:
    """Wait until the reader's consumer has been handed stream sequence `seq` (the batch is
    then open on the reader's side)."""
    jsm = nc.jsm()

    async def handed_out() -> bool:
        infos = await jsm.consumers_info(EVENTS_STREAM)
        return any(i.delivered and (i.delivered.stream_seq or 0) >= seq for i in infos)

    await until(handed_out, f"stream sequence {seq} delivered", timeout=timeout)


async def test_a_batch_stays_open_for_max_wait_and_closes_when_full(
    raw_nc: NATS, store: JetStreamEventStore
) -> None:
    await dispatch(store, "job-b1")
    batches = store.tail_batches(1, max_batch=3, max_wait=30.0, idle=30.0)
    first: asyncio.Task[Batch] = asyncio.create_task(anext(batches))  # type: ignore[arg-type]
    await delivered(raw_nc, 1)
    assert not first.done()  # one event in hand, the window is open
    await dispatch(store, "job-b2", "job-b3", "job-b4")
    batch = await asyncio.wait_for(first, 10)  # full at 3: closed long before 30 s
    assert [i.seq for i in batch] == [1, 2, 3]
    await batches.aclose()


async def test_a_batch_that_is_not_full_is_closed_after_max_wait(
    raw_nc: NATS, store: JetStreamEventStore
) -> None:
    await dispatch(store, "job-w1")
    batches = store.tail_batches(1, max_batch=1000, max_wait=0.2, idle=60.0)
    batch = await asyncio.wait_for(anext(batches), 20)  # not the 60 s idle, not 1,000 events
    assert [i.seq for i in batch] == [1]
    await batches.aclose()


async def test_max_wait_zero_takes_what_is_there_at_once(store: JetStreamEventStore) -> None:
    await dispatch(store, "job-z1", "job-z2")
    batches = store.tail_batches(1, max_batch=1000, max_wait=0.0, idle=60.0)
    assert [i.seq for i in await asyncio.wait_for(anext(batches), 20)] == [1, 2]
    await batches.aclose()


class Recording(Projector):
    """The real projector, noting the size of every transaction it commits."""

    sizes: list[int]

    async def apply(self, batch: list[Any], prepared: PreparedBatch | None = None) -> None:
        await super().apply(batch, prepared)
        self.sizes = [*getattr(self, "sizes", []), len(batch)]


async def test_the_projector_applies_up_to_n_events_or_t_per_transaction(
    raw_nc: NATS, store: JetStreamEventStore, tmp_path: Path
) -> None:
    await dispatch(store, "job-p1")
    projector = Recording(store, tmp_path / "rm.db", ProjectorSettings(batch=4, max_wait=5.0))
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    await delivered(raw_nc, 1)
    await dispatch(store, *(f"job-p{i}" for i in range(2, 10)))  # 9 events in all
    assert await projector.wait_for(9, 30)
    stop.set()
    await asyncio.wait_for(task, 20)
    # The first transaction waited for its window to fill up to 4; the 9th went alone once
    # its window of 5 s was over.
    assert projector.sizes == [4, 4, 1]
    assert (projector.applied, projector.batches, projector.events) == (9, 3, 9)
