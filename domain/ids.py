"""Identifiers that end up in NATS subjects, so they must be single subject tokens."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, Literal, get_args

Aggregate = Literal["job", "task", "extension", "service", "handoff", "brain", "schedule", "queue"]
AGGREGATES: Final[tuple[str, ...]] = get_args(Aggregate)

# One subject token: no dots, wildcards or whitespace; bounded so subjects stay short.
_TOKEN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-:]{0,127}$")


class InvalidId(ValueError):
    """An aggregate id that cannot be used as a subject token."""


def check_id(value: str, what: str = "id") -> str:
    """Return `value` if it is a valid single subject token, else raise `InvalidId`."""
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise InvalidId(
            f"{what}: {value!r} is not a valid id (1-128 chars of letters, digits, '_', '-', ':';"
            " no dots, spaces or wildcards)"
        )
    return value


def check_aggregate(value: str) -> Aggregate:
    """Return `value` as an `Aggregate`, or raise `InvalidId` naming the allowed kinds."""
    if value not in AGGREGATES:
        raise InvalidId(f"aggregate: {value!r} is not one of {', '.join(AGGREGATES)}")
    return value  # type: ignore[return-value]


@lru_cache(maxsize=65_536)
def event_subject(aggregate: str, aggregate_id: str, prefix: str = "baker.events") -> str:
    """The JetStream subject that holds one aggregate's events (ids are checked)."""
    return f"{prefix}.{check_aggregate(aggregate)}.{check_id(aggregate_id, f'{aggregate} id')}"
