"""The clock port: the manual fake clock the timing tests advance, and `pause`."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from adapters.clock import SYSTEM_CLOCK
from services.ports.clock import pause, within
from tests.fakes.clock import FakeClock


async def test_sleepers_wake_in_order_each_at_its_own_time() -> None:
    clock, woke = FakeClock(), []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now() - 1_000.0))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 30), ("a", 5), ("b", 10))]
    await clock.sleepers(3)
    await clock.advance(9)
    assert woke == [("a", 5.0)]
    await clock.advance(30)
    assert woke == [("a", 5.0), ("b", 10.0), ("c", 30.0)] and clock.now() == 1_039.0
    await asyncio.gather(*tasks)


async def test_a_loop_that_sleeps_runs_once_per_interval() -> None:
    clock, ticks = FakeClock(), []
    start = clock.wall()

    async def loop() -> None:
        while True:
            ticks.append(clock.wall() - start)
            await clock.sleep(5)

    task = asyncio.create_task(loop())
    await clock.sleepers(1)
    await clock.advance(30)
    assert ticks == [timedelta(seconds=s) for s in range(0, 31, 5)]
    task.cancel()


async def test_a_cancelled_sleeper_is_forgotten() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(10))
    await clock.sleepers(1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert clock.waiting == 0
    await clock.advance(20)  # nothing to wake, nothing raised


async def test_pause_ends_on_the_clock_or_on_stop() -> None:
    clock, stop = FakeClock(), asyncio.Event()
    waiting = asyncio.create_task(pause(clock, 30, stop))
    await clock.sleepers(1)
    await clock.advance(30)
    assert await waiting is False
    waiting = asyncio.create_task(pause(clock, 30, stop))
    await clock.sleepers(1)
    stop.set()
    assert await waiting is True and clock.waiting == 0
    assert await pause(clock, 30, stop) is True  # already stopped: no wait at all


async def test_within_tells_whether_the_work_ended_in_time() -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    work = asyncio.ensure_future(gate.wait())
    waiting = asyncio.create_task(within(clock, 10, work))
    await clock.sleepers(1)
    await clock.advance(10)
    assert await waiting is False and not work.done()
    gate.set()
    assert await within(clock, 10, work) is True


async def test_the_system_clock_moves_with_real_time() -> None:
    before, wall = SYSTEM_CLOCK.now(), SYSTEM_CLOCK.wall()
    await SYSTEM_CLOCK.sleep(0.001)
    assert SYSTEM_CLOCK.now() > before and SYSTEM_CLOCK.wall() >= wall and wall.tzinfo is not None
