"""Job executors: `command` (subprocess, no shell), `http` (httpx), `agent` (anthropic)."""

from adapters.executors.base import Execution, Progress, no_progress

__all__ = ["Execution", "Progress", "no_progress"]
