"""Waiting for a condition in tests: poll it, never sleep for a fixed time instead.

`until` (async) and `until_sync` (for tests that are not coroutines) poll `check` until it
returns something truthy and return that value; after `timeout` seconds they fail naming
what was awaited (`what`, or the check's own source line) and the last value seen. `until`
also takes a check that returns an awaitable (an async function, a coroutine-making lambda).
The timeout is a bound on a broken run, never a measure of speed: a test must not depend on
how fast the machine is, only on the condition becoming true.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

TIMEOUT = 20.0
EVERY = 0.01


async def until(
    check: Callable[[], Any], what: str = "", *, timeout: float = TIMEOUT, every: float = EVERY
) -> Any:
    """Poll `check` (sync or async) until it is truthy and return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(check, what, timeout, value))
        await asyncio.sleep(every)  # polling the condition, not waiting for time to pass


def until_sync(
    check: Callable[[], Any], what: str = "", *, timeout: float = TIMEOUT, every: float = EVERY
) -> Any:
    """`until` for synchronous tests: poll `check` until it is truthy and return its value."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(check, what, timeout, value))
        time.sleep(every)  # polling the condition, not waiting for time to pass
    return value


def _failure(check: Callable[[], Any], what: str, timeout: float, last: Any) -> str:
    return f"not reached within {timeout:g}s: {what or _describe(check)} (last: {last!r})"


def _describe(check: Callable[[], Any]) -> str:
    try:
        return inspect.getsource(check).strip()
    except (OSError, TypeError):
        return repr(check)
