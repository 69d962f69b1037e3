"""Running `Monitor` in a test on a fake clock: on the in-memory bus and store (unit tests) or
on a real nats-server and JetStream (integration tests). Time moves only in `sweep`, one sweep
interval at a time, and each step waits for its sweep to finish: nothing depends on how fast
the machine is."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from adapters.eventstore import EventStore, History
from services.executor import CommandExecutor
from services.monitor import Monitor, MonitorSettings
from services.monitor.extensions import Discover
from services.ports.bus import Bus
from tests.fakes.clock import FakeClock
from tests.polling import until

# The sweeper and the monitor's own heartbeat: both asleep on the clock when it is idle.
IDLE_SLEEPERS = 2


@dataclass
class Running:
    monitor: Monitor
    clock: FakeClock
    bus: Bus

    @property
    def stats(self) -> dict[str, int]:
        return self.monitor.stats

    async def sweep(self, times: int = 1) -> None:
        """Move the clock `times` sweep intervals on, waiting for each sweep to be done."""
        for _ in range(times):
            await self.clock.sleepers(IDLE_SLEEPERS)  # the loops are asleep: none is skipped
            await self._one_sweep(self.monitor.sweeps + 1)

    async def _one_sweep(self, number: int) -> None:
        await self.clock.advance(self.monitor.settings.sweep_every)
        await until(lambda: self.monitor.sweeps >= number, f"sweep {number}")

    async def sweep_for(self, seconds: float) -> None:
        every = self.monitor.settings.sweep_every
        assert seconds % every == 0, f"{seconds}s is not a whole number of {every}s sweeps"
        await self.sweep(int(seconds // every))


@contextlib.asynccontextmanager
async def running(
    bus: Bus,
    store: EventStore,
    clock: FakeClock,
    settings: MonitorSettings | None = None,
    *,
    instance: str = "monitor-test",
    discover: Discover | None = None,
) -> AsyncIterator[Running]:
    monitor = Monitor(
        bus, CommandExecutor(store), settings, instance, clock=clock, discover=discover
    )
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    await until(lambda: monitor.ready.is_set() or task.done(), "the monitor restored its state")
    if task.done():
        task.result()  # raises what stopped it
    try:
        yield Running(monitor, clock, bus)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def types(history: History) -> list[str]:
    return [e.envelope.type for e in history.events]


async def history_until(
    store: EventStore, aggregate: str, agg_id: str, check: Callable[[list[str]], Any]
) -> History:
    """The aggregate's history once `check(event types)` holds."""

    seen: list[str] = []

    async def reached() -> History | None:
        history = await store.load(aggregate, agg_id)
        seen[:] = types(history)
        return history if check(seen) else None

    try:
        found: History = await until(reached, f"{aggregate} {agg_id}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its events: {seen}") from None
    return found
