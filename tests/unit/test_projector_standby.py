"""Standby projectors on the in-memory event store, one real SQLite read model, the in-memory
lease store and a fake clock: one applies and one stands by; a holder that cannot renew stops
applying; the standby takes over from the checkpoint once the lease expired; every event ends
in the read model exactly once; a standby's read-your-writes follows the checkpoint."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.eventstore.memory import InMemoryEventStore
from adapters.sqlite import ReadModel, current_target
from domain.commands import DispatchJob
from domain.specs import parse_job_spec
from services.executor import CommandExecutor
from services.lease import LeaseCandidate, LeaseSettings
from services.projector import Projector
from services.projector_standby import StandbyProjector
from tests.fakes.clock import FakeClock
from tests.fakes.lease import FakeLeases
from tests.polling import until

SPEC = parse_job_spec({"type": "command", "payload": {"command": "echo hi"}})
KEY = "projector.unit"
SETTINGS = LeaseSettings(ttl=6.0, renew_every=2.0, check_every=1.0, margin=1.0)


@dataclass
class Rig:
    store: InMemoryEventStore
    leases: FakeLeases
    clock: FakeClock
    db: Path
    read_model: ReadModel
    stop: asyncio.Event

    def standby(self, name: str) -> StandbyProjector:
        candidate = LeaseCandidate(self.leases, KEY, name, settings=SETTINGS, clock=self.clock)
        return StandbyProjector(
            Projector(self.store, self.db, instance=name), candidate,
            checkpoint=self.read_model.applied, clock=self.clock,
        )  # fmt: skip

    async def dispatch(self, prefix: str, count: int) -> int:
        executor = CommandExecutor(self.store)
        for i in range(count):
            await executor.execute("job", f"{prefix}-{i}", DispatchJob(spec=SPEC), new=True)
        return await self.store.head_seq()

    def jobs(self) -> list[str]:
        with sqlite3.connect(f"file:{current_target(self.db)}?mode=ro", uri=True) as conn:
            return [r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY id")]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    db = tmp_path / "readmodel.db"
    read_model = ReadModel(db)
    r = Rig(InMemoryEventStore(), FakeLeases(), FakeClock(), db, read_model, asyncio.Event())
    yield r
    r.stop.set()
    await read_model.close()


async def started(rig: Rig, *names: str) -> list[tuple[StandbyProjector, asyncio.Task[None]]]:
    out = []
    for name in names:
        standby = rig.standby(name)
        await standby.open()
        out.append((standby, asyncio.create_task(standby.run(rig.stop))))
        await until(_has_read(standby.candidate), f"{name} read the lease")
    return out


def _has_read(candidate: LeaseCandidate) -> Callable[[], bool]:
    return lambda: candidate.current is not None


async def test_one_applies_the_other_stands_by_and_reads_its_writes(rig: Rig) -> None:
    (a, _ta), (b, _tb) = await started(rig, "p-a", "p-b")
    assert (a.state, b.state) == ("active", "standby")
    head = await rig.dispatch("job-1", 5)
    assert await b.wait_for(head, 20)  # via the checkpoint a wrote
    assert await a.wait_for(head, 20)
    assert b.details()["state"] == "standby" and b.details()["leaseHolder"] == "p-a"
    assert a.details()["state"] == "active" and b.projector.events == 0
    assert rig.jobs() == [f"job-1-{i}" for i in range(5)]
    await rig.clock.advance(30)  # renewals keep a active, b standing by
    assert (a.state, b.state) == ("active", "standby")


async def test_a_holder_that_cannot_renew_stops_and_the_standby_takes_over(rig: Rig) -> None:
    (a, ta), (b, _tb) = await started(rig, "p-a", "p-b")
    first = await rig.dispatch("job-1", 3)
    assert await a.wait_for(first, 20)
    rig.leases.failing = True  # a is cut off from the lease store (so is b, for now)
    await rig.clock.sleepers(2)
    await rig.clock.advance(2.0)  # a's renewal fails: it stops applying at once
    await until(lambda: a.state == "standby" and a.projector.writer is None, "a stood down")
    applied_by_a = a.projector.events
    ta.cancel()  # and dies without a word, as a SIGKILL would leave it
    await asyncio.gather(ta, return_exceptions=True)
    head = await rig.dispatch("job-2", 3)
    rig.leases.failing = False
    await rig.clock.advance(3.0)
    assert b.state == "standby"  # a's last value has not expired yet
    await rig.clock.advance(1.0)  # now it has: b takes over from the checkpoint
    await until(lambda: b.state == "active", "b took over")
    assert await b.wait_for(head, 20)
    assert a.projector.events == applied_by_a
    assert b.projector.events == head - first  # from the checkpoint on, nothing twice
    assert rig.jobs() == sorted([f"job-1-{i}" for i in range(3)] + [f"job-2-{i}" for i in range(3)])
    assert b.terms == 1 and b.details()["state"] == "active"


async def test_a_holder_that_stops_releases_and_the_standby_takes_over_at_once(
    rig: Rig,
) -> None:
    own_stop = asyncio.Event()
    a = rig.standby("p-a")
    await a.open()
    ta = asyncio.create_task(a.run(own_stop))
    await until(lambda: a.state == "active", "a active")
    ((b, _tb),) = await started(rig, "p-b")
    own_stop.set()
    await ta
    await rig.clock.advance(1.0)  # b's next look at the lease, long before a's TTL
    await until(lambda: b.state == "active", "b took over")
    head = await rig.dispatch("job-3", 2)
    assert await b.wait_for(head, 20)
    assert rig.jobs() == ["job-3-0", "job-3-1"]
