"""NATS least privilege (DESIGN §12), pure: the roles that connect to the server and what
each may publish and subscribe to, as data that the server configuration is rendered from,
the CLI prints and the tests read.

Only allow lists: whatever a role's lists do not name is refused by the server (a permissions
violation). Only the Brain may manage streams (`$JS.API.STREAM.CREATE/UPDATE/DELETE/PURGE`)
and write job, task, schedule, queue and handoff events; the monitor appends only its own
aggregates' events (extensions and services, DESIGN §8). The stream and consumer names are
those of `adapters.nats.streams` (a unit test checks they agree).

Known limits of a static configuration: the task runner's user may use any task's subjects
(not only its own: that needs a user per task, i.e. JWT accounts or an auth callout); every
role subscribing to `_INBOX.>` could read other clients' replies (seed-protocol clients use
that prefix); and a role allowed to make an ephemeral consumer (the ordered reads) could make
a push consumer that delivers the stream's stored messages to a subject someone listens on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ROLES: Final = (
    "brain",
    "worker",
    "projector",
    "monitor",
    "launcher",
    "task-runner",
    "extension",
    "reader",
    "api",
)
"""Every role, each a user of the embedded server named after it."""

EVENTS: Final = "BAKER_EVENTS"
JOBS: Final = "BAKER_JOBS"
CANCELS: Final = "KV_baker-cancels"
LEASES: Final = "KV_baker-leases"
"""Renewable leases, one per read model: which projector applies to it (DESIGN §13)."""
LANES: Final = ("workers", "workers-high", "workers-low")
"""The workers' durable consumers of the priority lanes on `BAKER_JOBS`."""
HEALTH: Final = "baker.system.health"
INBOX: Final = "_INBOX.>"
API: Final = "$JS.API"


class UnknownRole(ValueError):
    """A role name that is not one of `ROLES`."""


@dataclass(frozen=True)
class Permissions:
    """What one role may do: subjects it may publish to and subscribe to, and whether it may
    answer requests it received (a reply subject it could not otherwise publish to)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False


INSPECT: Final = (
    f"{API}.INFO",
    f"{API}.STREAM.NAMES",
    f"{API}.STREAM.INFO.*",
    f"{API}.CONSUMER.INFO.*.*",
)
"""Read-only state of the account, its streams and consumers (every daemon checks at start
that the streams are there: `provision` only reads when nothing is missing)."""


def read_stream(stream: str) -> tuple[str, ...]:
    """Reading a stream that is not a work queue: direct and leader gets, and ordered reads
    through an ephemeral consumer (created without a name, pulled, deleted). Never on
    `BAKER_JOBS`: a pull there would take a job from the workers."""
    return (
        f"{API}.DIRECT.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}.>",
        f"{API}.STREAM.MSG.GET.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"{API}.CONSUMER.DELETE.{stream}.*",
    )


READER: Final = Permissions(publish=(*INSPECT, *read_stream(EVENTS)), subscribe=(INBOX,))

ROLE_PERMISSIONS: Final[dict[str, Permissions]] = {
    # Dispatch, ingest, stream and consumer management, the KV buckets, handoff, task
    # launches: the Brain owns the system, so it may do everything.
    "brain": Permissions(publish=(">",), subscribe=(">",), allow_responses=True),
    "worker": Permissions(
        publish=(
            "baker.jobs.status.*",  # its reports ...
            "baker.jobs.result.*",
            "baker.jobs.step.*",
            "baker.jobs.output.*",  # ... live output (core NATS)
            HEALTH,  # heartbeats naming its running jobs (the Brain's lease)
            *(f"{API}.CONSUMER.MSG.NEXT.{JOBS}.{lane}" for lane in LANES),  # taking jobs
            *(f"$JS.ACK.{JOBS}.{lane}.>" for lane in LANES),  # acks, naks, progress
            *INSPECT,
            f"{API}.STREAM.MSG.GET.{JOBS}",  # a resuming agent's steps still queued
            *read_stream(EVENTS),  # a resuming agent's recorded steps
            *read_stream(CANCELS),  # cancel signals
        ),
        subscribe=(INBOX, "$KV.baker-cancels.*", "baker.jobs.dispatch.*"),  # + lane hints
    ),
    "projector": Permissions(
        publish=(
            *READER.publish,
            HEALTH,
            "$KV.baker-leases.projector.*",  # its read model's lease (standby projectors)
            *read_stream(LEASES),
        ),
        subscribe=(INBOX,),
    ),
    "monitor": Permissions(
        publish=(
            "baker.events.extension.*",  # the two aggregates it records (DESIGN §8)
            "baker.events.service.*",
            HEALTH,
            *READER.publish,  # rebuilding what it knew from the log
        ),
        subscribe=(INBOX, "baker.extensions.>", HEALTH),
    ),
    "launcher": Permissions(
        publish=(HEALTH, *INSPECT),
        subscribe=(
            INBOX,
            "baker.tasks.launch",
            "baker.tasks.instructions.*",
            "baker.tasks.cancel.*",
        ),
        allow_responses=True,  # answers launches, runners' instructions and cancels
    ),
    "task-runner": Permissions(
        publish=("baker.tasks.status.*", "baker.tasks.result.*", "baker.tasks.instructions.*"),
        subscribe=(INBOX,),  # answers to its requests and its stores' acks
    ),
    "extension": Permissions(publish=("baker.extensions.>",), subscribe=()),
    "reader": READER,
    # `baker api`: the read side of the HTTP API. Reads the log (pages, SSE), the queue's
    # consumers (lanes), heartbeats (health) and live output; writes nothing.
    "api": Permissions(
        publish=(*READER.publish, HEALTH),
        subscribe=(INBOX, HEALTH, "baker.jobs.output.*"),
    ),
}


def permissions(role: str) -> Permissions:
    """The permissions of `role`, or `UnknownRole` naming the roles there are."""
    try:
        return ROLE_PERMISSIONS[role]
    except KeyError:
        raise UnknownRole(f"unknown NATS role {role!r}: one of {', '.join(ROLES)}") from None
