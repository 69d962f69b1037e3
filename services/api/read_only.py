"""The read side of the API alone (`baker api`, DESIGN §13): what it answers to a write, and
the fence that keeps its command executor from ever appending.

`baker api` serves every GET route, the SSE streams and the dashboard from the shared read model
and the event log, on as many hosts as needed; writes are the Brain's. A write sent to it is
refused before any route runs with 405 (`Allow: GET, HEAD, OPTIONS`), naming the Brain's API
when `BAKER_BRAIN_URL` says where it is.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from services.api.context import error
from services.brain.leadership import Fenced

READS = frozenset({"GET", "HEAD", "OPTIONS"})


def writes_go_to_the_brain(method: str, brain_url: str | None) -> JSONResponse:
    """405 for a write to the read-only API, with the Brain's URL if it is known."""
    where = brain_url or "the Brain's API (BAKER_BRAIN_URL is not set here)"
    answer = error(
        405, f"this API only reads: send {method} requests to the Brain at {where}",
        brain=brain_url,
    )  # fmt: skip
    answer.headers["Allow"] = ", ".join(sorted(READS))
    return answer


class NoWrites:
    """A command executor's fence that refuses every append (`services.executor.Fence`): the
    read-only API reads aggregates through an executor and must never append through one."""

    def check(self, aggregate: str) -> int | None:
        raise Fenced(f"this API only reads: it may not append {aggregate} events")
