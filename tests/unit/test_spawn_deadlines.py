"""Time limits of a loop's children behind one timer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.executors.spawn import _Deadlines


class FakeChild:
    def __init__(self, name: str, expired: list[str], done: asyncio.Event | None = None) -> None:
        self.name, self._expired, self._done = name, expired, done

    def expire(self) -> None:
        self._expired.append(self.name)
        if self._done is not None:
            self._done.set()


async def test_children_expire_in_the_order_of_their_limits() -> None:
    expired: list[str] = []
    last = asyncio.Event()
    deadlines = _Deadlines(asyncio.get_running_loop())
    for name, limit in (("slow", 0.06), ("fast", 0.02), ("mid", 0.04)):
        deadlines.add(FakeChild(name, expired, last if name == "slow" else None), limit)  # type: ignore[arg-type]
    await last.wait()
    assert expired == ["fast", "mid", "slow"]


async def test_a_child_that_ends_in_time_is_not_expired() -> None:
    expired: list[str] = []
    later = asyncio.Event()
    deadlines = _Deadlines(asyncio.get_running_loop())
    ended = FakeChild("ended", expired)
    deadlines.add(ended, 0.01)  # type: ignore[arg-type]
    deadlines.add(FakeChild("later", expired, later), 0.03)  # type: ignore[arg-type]
    deadlines.discard(ended)  # type: ignore[arg-type]
    await later.wait()
    assert expired == ["later"]


async def test_one_timer_for_many_children_with_the_same_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    armed: list[asyncio.TimerHandle] = []
    call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        handle = call_at(when, callback, *args)
        armed.append(handle)
        return handle

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    deadlines = _Deadlines(loop)
    children = [FakeChild(str(n), []) for n in range(50)]
    for child in children:
        deadlines.add(child, 30.0)  # type: ignore[arg-type]
    assert len(armed) == 1
    shorter = FakeChild("shorter", [])
    deadlines.add(shorter, 5.0)  # type: ignore[arg-type]
    assert len(armed) == 2 and armed[0].cancelled()  # moved to the earlier limit
    assert not armed[1].cancelled()
    for child in [*children, shorter]:
        deadlines.discard(child)  # type: ignore[arg-type]
    armed[1].cancel()
