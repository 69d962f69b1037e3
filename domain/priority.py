"""Priority lanes (DESIGN §11): a job's `priority` picks the subject its dispatch message is
queued on, and each subject has its own durable consumer, so a worker with a free slot can ask
the `high` lane first, then `normal`, then `low`.

`normal` keeps the first wave's plain subject `baker.jobs.dispatch` (and its consumer
`workers`): a seed-protocol client's dispatch is a normal job, and a deployment's existing
consumer needs no change. The other lanes are `baker.jobs.dispatch.<lane>`, which `BAKER_JOBS`
already accepts.
"""

from __future__ import annotations

from typing import Final, Literal

Priority = Literal["high", "normal", "low"]
PRIORITIES: Final[tuple[Priority, ...]] = ("high", "normal", "low")  # the order workers ask
DEFAULT_PRIORITY: Final[Priority] = "normal"
DISPATCH_SUBJECT: Final = "baker.jobs.dispatch"


def lane_of(priority: str | None) -> Priority:
    """The lane of a job's priority (none, or one this code does not know: `normal`)."""
    for lane in PRIORITIES:
        if priority == lane:
            return lane
    return DEFAULT_PRIORITY


def lane_subject(priority: str | None) -> str:
    """The subject a job of this priority is queued on."""
    lane = lane_of(priority)
    return DISPATCH_SUBJECT if lane == DEFAULT_PRIORITY else f"{DISPATCH_SUBJECT}.{lane}"


def subject_lane(subject: str) -> Priority | None:
    """The lane of a dispatch subject; None for a subject that is not a lane's."""
    for lane in PRIORITIES:
        if subject == lane_subject(lane):
            return lane
    return None
