"""Keyed serial execution: in order per key, concurrent across keys, failures contained."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.serial import KeyedSerial


async def test_one_key_runs_in_submission_order_and_keys_overlap() -> None:
    serial = KeyedSerial()
    log: list[str] = []
    gate = asyncio.Event()

    def item(name: str, wait: asyncio.Event | None = None):  # type: ignore[no-untyped-def]
        async def work() -> None:
            log.append(f"start {name}")
            if wait is not None:
                await wait.wait()
            log.append(f"end {name}")

        return work

    serial.submit("a", item("a1", gate))
    serial.submit("a", item("a2"))
    serial.submit("b", item("b1"))
    while "end b1" not in log:  # b is not held up behind a
        assert "start a2" not in log
        await asyncio.sleep(0)
    assert log == ["start a1", "start b1", "end b1"]
    gate.set()
    await serial.drain()
    assert log[3:] == ["end a1", "start a2", "end a2"]
    assert not serial.tasks


async def test_a_failing_item_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serial = KeyedSerial()
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("boom")

    async def fine() -> None:
        ran.append("fine")

    serial.submit("job-1", broken)
    serial.submit("job-1", fine)
    with caplog.at_level(logging.ERROR, "baker.serial"):
        await serial.drain()
    assert ran == ["fine"]
    assert "job-1" in caplog.text and "boom" in caplog.text


async def test_drain_waits_for_work_submitted_while_draining() -> None:
    serial = KeyedSerial()
    ran: list[int] = []

    async def chain(n: int) -> None:
        ran.append(n)
        if n < 3:
            serial.submit(f"k{n + 1}", lambda: chain(n + 1))

    serial.submit("k0", lambda: chain(0))
    await serial.drain()
    assert ran == [0, 1, 2, 3]
