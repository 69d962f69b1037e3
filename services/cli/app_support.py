"""Helpers shared by CLI commands."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine; Ctrl-C ends it quietly with 130."""
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return 130
