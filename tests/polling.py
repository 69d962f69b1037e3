"""Waiting for a condition in tests: poll it, never sleep for a fixed time instead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def until(check: Callable[[], Any], what: str = "", *, timeout: float = 20.0) -> Any:
    """Poll `check` until it is truthy and return its value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"not reached within {timeout}s: {what or check}"
        await asyncio.sleep(0.01)  # polling the condition, not waiting for time to pass
    return value
