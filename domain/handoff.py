"""Blue-green handoff messages on `baker.system.handoff` (DESIGN §2, digest §8.2).

One subject, a `type` per step: `ready` (new → old), `clear` (old → new, once drained),
`ack` (new → old, once active) and `abort` (either way). Each carries the sender, the
versions and the fencing generation being handed over. The leader record names the Brain
that leads and its generation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from domain.wire import WireMessage, decode

HANDOFF_SUBJECT = "baker.system.handoff"
Step = Literal["ready", "clear", "ack", "abort"]


class HandoffMessage(WireMessage):
    type: Step
    from_instance: str = Field(min_length=1, max_length=128)
    to_instance: str | None = Field(default=None, max_length=128)
    version: str = Field(default="", max_length=64)
    generation: int = Field(default=0, ge=0)
    handoff_id: str | None = Field(default=None, max_length=128)
    reason: str | None = Field(default=None, max_length=2000)
    timestamp: datetime | None = None


def decode_handoff(raw: bytes | str) -> HandoffMessage:
    """Parse a handoff message; `WireError` names the bad field."""
    return decode(HandoffMessage, raw)


class LeadershipTaken(Exception):
    """Someone else changed the leader record first."""


@dataclass(frozen=True)
class Leader:
    """The leader record: which Brain leads, with which fencing generation."""

    instance: str
    generation: int
    version: str
    since: str
    revision: int = 0  # stream sequence of the record

    @staticmethod
    def parse(data: bytes, revision: int) -> Leader | None:
        try:
            doc: dict[str, Any] = json.loads(data)
            return Leader(
                str(doc["instance"]), int(doc["generation"]), str(doc.get("version", "")),
                str(doc.get("since", "")), revision,
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None
