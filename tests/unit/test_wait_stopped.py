"""`wait_stopped`: a part that does not stop names itself and where it waits."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.signals import awaiting, wait_stopped, watch_stopping
from tests.polling import until

log = logging.getLogger("test.stopping")


async def _held(gate: asyncio.Event) -> None:
    await _inner(gate)


async def _inner(gate: asyncio.Event) -> None:
    await gate.wait()


async def _fails() -> None:
    raise RuntimeError("boom")


async def test_a_part_still_running_is_named_with_where_it_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = asyncio.Event()
    held = asyncio.create_task(_held(gate), name="worker-x")
    quick = asyncio.create_task(asyncio.sleep(0), name="api")
    waiting = asyncio.create_task(wait_stopped([held, quick], log, every=0.01))
    with caplog.at_level(logging.WARNING, logger="test.stopping"):
        await until(lambda: caplog.records)  # the first warning, while `held` still waits
        assert not waiting.done()
        gate.set()
        await asyncio.wait_for(waiting, 5)
    message = caplog.records[0].getMessage()
    assert message.startswith("still stopping after")
    assert "worker-x at _held (" in message and "> _inner (" in message
    assert "test_wait_stopped.py:" in message and "api" not in message


async def test_failed_parts_are_waited_for_and_their_errors_retrieved() -> None:
    failed = asyncio.create_task(_fails(), name="bad")
    cancelled = asyncio.create_task(asyncio.sleep(10), name="cancelled")
    cancelled.cancel()
    await wait_stopped([failed, cancelled], log, every=0.01)
    assert failed.done() and cancelled.cancelled()
    assert isinstance(failed.exception(), RuntimeError)


async def test_awaiting_a_task_that_has_not_started_names_its_coroutine() -> None:
    gate = asyncio.Event()
    task = asyncio.create_task(_held(gate), name="new")
    assert awaiting(task).startswith("_held (")
    gate.set()
    await task


async def test_a_stop_that_hangs_says_where_it_waits(caplog: pytest.LogCaptureFixture) -> None:
    gate = asyncio.Event()

    async def stopping() -> None:
        watch = watch_stopping(log, every=0.01)
        try:
            await _held(gate)
        finally:
            watch.cancel()

    task = asyncio.create_task(stopping())
    with caplog.at_level(logging.WARNING, logger="test.stopping"):
        await until(lambda: caplog.records)
        gate.set()
        await task
    message = caplog.records[0].getMessage()
    assert message.startswith("still stopping after")
    assert "at stopping (" in message and "> _held (" in message and "> _inner (" in message
