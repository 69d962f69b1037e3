"""The worker waits for a job's executor however it ends, but never swallows its own stop."""

from __future__ import annotations

import asyncio

import pytest

from services.worker.worker import _settled


async def test_an_executor_that_fails_or_is_cancelled_is_waited_for_quietly() -> None:
    async def boom() -> None:
        raise RuntimeError("executor bug")

    failed = asyncio.create_task(boom())
    await _settled(failed)
    assert isinstance(failed.exception(), RuntimeError)
    cancelled = asyncio.create_task(asyncio.sleep(60))
    await asyncio.sleep(0)
    cancelled.cancel()
    await _settled(cancelled)
    assert cancelled.cancelled()


async def test_the_waiting_task_being_cancelled_still_stops_it() -> None:
    started = asyncio.Event()

    async def long_job() -> None:
        started.set()
        await asyncio.sleep(60)

    execution = asyncio.create_task(long_job())
    waiter = asyncio.create_task(_settled(execution))
    await started.wait()
    await asyncio.sleep(0)  # the waiter is now waiting on the execution
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(0)
    assert execution.cancelled()  # its child is not left running behind a stopped worker
