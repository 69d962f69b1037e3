"""Streams and consumers of DESIGN §2, provisioned idempotently.

An existing stream whose configuration differs is reported field by field and left alone:
recreating it would lose jobs or, for `BAKER_EVENTS`, history. The exceptions are changes
known to be safe in place: an older `BAKER_JOBS` that took all of `baker.jobs.>` gets today's
subjects (its messages and consumers are kept), and `baker provision` changes a stream's
replicas to `BAKER_REPLICAS` when they are all that differs (`replicas.py`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from adapters.nats import jsapi, replicas
from adapters.nats.jsapi import NotFound
from adapters.nats.message import JetStreamError
from domain.priority import lane_subject

if TYPE_CHECKING:
    from adapters.nats.client import Client

log = logging.getLogger("baker.provision")

JOBS_STREAM = "BAKER_JOBS"
EVENTS_STREAM = "BAKER_EVENTS"
TASKS_STREAM = "BAKER_TASKS"
ADVISORIES_STREAM = "BAKER_ADVISORIES"
DISPATCH_SUBJECT = "baker.jobs.dispatch"
WORKERS_CONSUMER = "workers"  # the `normal` lane, on the plain dispatch subject
LANE_CONSUMERS: dict[str, str] = {
    "high": "workers-high",
    "normal": WORKERS_CONSUMER,
    "low": "workers-low",
}
"""The workers' durable consumer of each priority lane (`domain.priority`): one per subject,
since a work-queue stream forbids overlapping consumers and a consumer delivers in stream
order, so only separate consumers let a worker take `high` before older `normal` jobs."""
INGEST_CONSUMER = "brain-ingest"
ADVISORIES_CONSUMER = "brain-advisories"
TASKS_CONSUMER = "brain-tasks"
CANCELS_BUCKET = "baker-cancels"
CANCELS_STREAM = f"KV_{CANCELS_BUCKET}"
CANCELS_PREFIX = f"$KV.{CANCELS_BUCKET}"
LEADER_BUCKET = "baker-leader"
LEADER_STREAM = f"KV_{LEADER_BUCKET}"
LEADER_KEY = f"$KV.{LEADER_BUCKET}.brain"
LEASES_BUCKET = "baker-leases"
LEASES_STREAM = f"KV_{LEASES_BUCKET}"
LEASES_PREFIX = f"$KV.{LEASES_BUCKET}"
IDEMPOTENCY_BUCKET = "baker-idempotency"
IDEMPOTENCY_STREAM = f"KV_{IDEMPOTENCY_BUCKET}"
IDEMPOTENCY_PREFIX = f"$KV.{IDEMPOTENCY_BUCKET}"
MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.*"
DAY = 86_400.0
ELECTION = 30.0
"""Seconds provisioning waits out a cluster's elections (a node just gone, or the cluster just
started on its stores): a daemon started meanwhile provisions once they are over."""


class ProvisioningError(RuntimeError):
    """A stream or consumer exists with a configuration other than the one we need."""


@dataclass(frozen=True)
class Topology:
    replicas: int = 1
    max_queued_jobs: int = 10_000
    ack_wait: float = 60.0
    max_deliver: int = 3


Config = dict[str, Any]
"""A stream's or consumer's configuration in the server's own JSON (durations in ns)."""


def seconds(value: float) -> int:
    """A duration in the server's unit (nanoseconds)."""
    return int(value * 1e9)


JOBS_SUBJECTS = [
    DISPATCH_SUBJECT,
    f"{DISPATCH_SUBJECT}.>",
    "baker.jobs.status.*",
    "baker.jobs.result.*",
    "baker.jobs.step.*",
]
"""Named one by one, not `baker.jobs.>`: live output (`baker.jobs.output.<jobId>`, core NATS,
DESIGN §10) must not be captured by the work queue, where nobody would consume it."""
OLD_JOBS_SUBJECTS = ["baker.jobs.>"]  # before live output; updated in place on provision


def jobs_stream(topo: Topology) -> Config:
    return {
        "name": JOBS_STREAM,
        "subjects": list(JOBS_SUBJECTS),
        "retention": "workqueue",
        "max_age": seconds(DAY),
        "storage": "file",
        "num_replicas": topo.replicas,
        "max_msgs": topo.max_queued_jobs,
        "discard": "new",
        "duplicate_window": seconds(120),
    }


def events_stream(topo: Topology) -> Config:
    return {
        "name": EVENTS_STREAM,
        "subjects": ["baker.events.>"],
        "retention": "limits",
        "storage": "file",
        "num_replicas": topo.replicas,
        "max_age": 0,
        "max_msgs": -1,  # the log is never trimmed: pinned and checked, so a stream whose
        "max_bytes": -1,  # limits would drop events is reported instead of used
        "max_msgs_per_subject": -1,
        "deny_delete": True,
        "deny_purge": True,
        "duplicate_window": seconds(120),
        "allow_direct": True,
    }


def tasks_stream(topo: Topology) -> Config:
    # Not `baker.tasks.>`: `baker.tasks.launch` is core request/reply and must stay unanswered
    # by the stream.
    return {
        "name": TASKS_STREAM,
        "subjects": ["baker.tasks.status.*", "baker.tasks.result.*"],
        "retention": "workqueue",
        "max_age": seconds(DAY),
        "storage": "file",
        "num_replicas": topo.replicas,
        "duplicate_window": seconds(120),
    }


def advisories_stream(topo: Topology) -> Config:
    """Max-deliveries advisories, kept so a Brain that was down still records them."""
    return {
        "name": ADVISORIES_STREAM,
        "subjects": [MAX_DELIVERIES_ADVISORY],
        "retention": "limits",
        "max_age": seconds(7 * DAY),
        "storage": "file",
        "num_replicas": topo.replicas,
        "duplicate_window": seconds(120),
    }


def leader_stream(topo: Topology) -> Config:
    """A KV bucket holding the active Brain and its fencing generation (compare-and-set)."""
    return {
        **cancels_stream(topo),
        "name": LEADER_STREAM,
        "subjects": [f"$KV.{LEADER_BUCKET}.>"],
        "max_age": 0,
    }


def leases_stream(topo: Topology) -> Config:
    """A KV bucket of renewable leases (`domain.lease`), one key per read model: which
    projector applies events to it (compare-and-set on the key's revision)."""
    return {
        **cancels_stream(topo),
        "name": LEASES_STREAM,
        "subjects": [f"{LEASES_PREFIX}.>"],
        "max_age": 0,
        "discard": "old",
    }


def cancels_stream(topo: Topology) -> Config:
    """A KV bucket (one value per job id) that signals cancel requests to workers."""
    return {
        "name": CANCELS_STREAM,
        "subjects": [f"{CANCELS_PREFIX}.>"],
        "retention": "limits",
        "max_age": seconds(DAY),
        "max_msgs_per_subject": 1,
        "storage": "file",
        "num_replicas": topo.replicas,
        "allow_rollup_hdrs": True,
        "deny_delete": True,
        "duplicate_window": seconds(120),
        "allow_direct": True,
        "discard": "new",
    }


def idempotency_stream(topo: Topology) -> Config:
    """A KV bucket of idempotency keys (key hash -> first job), each value living its own
    TTL (`Nats-TTL` per message, server 2.11+), so `BAKER_IDEMPOTENCY_TTL` can change without
    touching the stream."""
    return {
        **cancels_stream(topo),
        "name": IDEMPOTENCY_STREAM,
        "subjects": [f"{IDEMPOTENCY_PREFIX}.>"],
        "max_age": 0,
        "discard": "old",
        "allow_msg_ttl": True,
    }


def workers_consumer(topo: Topology) -> Config:
    return lane_consumer(topo, "normal")


def high_lane_consumer(topo: Topology) -> Config:
    return lane_consumer(topo, "high")


def low_lane_consumer(topo: Topology) -> Config:
    return lane_consumer(topo, "low")


def lane_consumer(topo: Topology, lane: str) -> Config:
    """The workers' consumer of one priority lane; `normal` is the first wave's `workers`,
    unchanged (an existing one is kept as it is)."""
    return {
        "durable_name": LANE_CONSUMERS[lane],
        "filter_subject": lane_subject(lane),
        "ack_policy": "explicit",
        "ack_wait": seconds(topo.ack_wait),
        "max_deliver": topo.max_deliver,
        "max_ack_pending": 10_000,
    }


INGEST_SUBJECTS = ["baker.jobs.status.*", "baker.jobs.result.*", "baker.jobs.step.*"]
"""What a worker reports, named one by one (multiple filters, 2.10+), so other subjects such
as `baker.jobs.dispatch.<lane>` can live in `BAKER_JOBS` beside the ingest's."""
FIRST_WAVE_INGEST_FILTER = "baker.jobs.*.>"  # the first wave's, updated in place on provision


def ingest_consumer(topo: Topology) -> Config:
    return {
        "durable_name": INGEST_CONSUMER,
        "filter_subjects": list(INGEST_SUBJECTS),
        "ack_policy": "explicit",
        "ack_wait": seconds(30),
        "max_deliver": -1,  # a status must never be dropped; bad ones are terminated explicitly
        "max_ack_pending": 10_000,
    }


def tasks_consumer(_topo: Topology) -> Config:
    """Task runners' status and result messages, for the Brain's task ingest."""
    return {
        "durable_name": TASKS_CONSUMER,
        "filter_subject": "baker.tasks.>",
        "ack_policy": "explicit",
        "ack_wait": seconds(30),
        "max_deliver": -1,
        "max_ack_pending": 10_000,
    }


def advisories_consumer(_topo: Topology) -> Config:
    return {
        "durable_name": ADVISORIES_CONSUMER,
        "ack_policy": "explicit",
        "ack_wait": seconds(30),
        "max_deliver": -1,
    }


_STREAM_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "max_age",
    "max_msgs",
    "max_bytes",
    "max_msgs_per_subject",
    "discard",
    "num_replicas",
    "duplicate_window",
    "deny_delete",
    "deny_purge",
    "allow_direct",
)
_CONSUMER_FIELDS = (
    "filter_subject",
    "filter_subjects",
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "deliver_subject",
)


_R = replicas.FIELD
_NOT_REPLICAS = tuple(f for f in _STREAM_FIELDS if f != _R)
_DURATIONS = frozenset({"max_age", "duplicate_window", "ack_wait"})


def differences(want: Config, have: Config, fields: tuple[str, ...]) -> list[str]:
    """Human-readable `field: have X, want Y` for every field of `want` that differs
    (durations in seconds)."""
    out = []
    for name in fields:
        if name not in want:
            continue
        wanted, actual = want[name], have.get(name)
        if name in ("subjects", "filter_subjects"):
            wanted, actual = sorted(wanted), sorted(actual or [])
        if name in _DURATIONS:
            wanted, actual = (wanted or 0) / 1e9, (actual or 0) / 1e9
            same = abs(wanted - actual) < 1e-3
        else:
            same = wanted == actual or (not wanted and not actual)
        if not same:
            out.append(f"{name}: have {actual}, want {wanted}")
    return out


async def ensure_stream(
    client: Client, want: Config, *, scale: bool = False
) -> Literal["created", "updated", "ok"]:
    """Create the stream if missing, narrow the subjects of an older `BAKER_JOBS`, change its
    replicas if they are all that differs and `scale` (`replicas.py`), and raise
    `ProvisioningError` if it exists and differs in any other way."""
    name = want["name"]
    try:
        info = await jsapi.stream_info(client, name)
    except NotFound:
        try:
            await jsapi.add_stream(client, want)
            log.info("created stream %s", name)
            return "created"
        except JetStreamError:  # lost a race with another process creating it
            info = await jsapi.stream_info(client, name)
    have = info["config"]
    diffs = differences(want, have, _STREAM_FIELDS)
    if diffs and _jobs_subjects_upgradable(want, have):
        await jsapi.update_stream(client, {**have, "subjects": want["subjects"]})
        log.info("updated stream %s: %s", name, "; ".join(diffs))
        return "updated"
    if diffs and not differences(want, have, _NOT_REPLICAS):
        if not scale:
            raise ProvisioningError(replicas.mismatch(name, replicas.count(have), want[_R]))
        try:
            await replicas.scale(client, have, want[_R])
        except replicas.ScaleRefused as exc:
            raise ProvisioningError(str(exc)) from None
        return "updated"
    if diffs:
        raise ProvisioningError(
            f"stream {name} exists with another configuration ({'; '.join(diffs)}); "
            "it is left untouched: edit or remove it by hand (nats stream edit/rm) if intended"
        )
    return "ok"


async def ensure_consumer(
    client: Client, stream: str, want: Config
) -> Literal["created", "updated", "ok"]:
    """Create a durable consumer if missing, update a first-wave one whose only difference is
    a filter we narrowed, and raise `ProvisioningError` for any other difference."""
    name = want["durable_name"]
    try:
        info = await jsapi.consumer_info(client, stream, name)
    except NotFound:
        await jsapi.add_consumer(client, stream, want)
        log.info("created consumer %s on %s", name, stream)
        return "created"
    have = info["config"]
    diffs = differences(want, have, _CONSUMER_FIELDS)
    if diffs and _upgradable(want, have):
        # The server keeps the consumer's position and pending acks across the update.
        await jsapi.add_consumer(client, stream, want)
        log.info("updated consumer %s on %s: %s", name, stream, "; ".join(diffs))
        return "updated"
    if diffs:
        raise ProvisioningError(
            f"consumer {name} on {stream} exists with another configuration "
            f"({'; '.join(diffs)}); remove it (nats consumer rm) to let baker recreate it"
        )
    return "ok"


def _jobs_subjects_upgradable(want: Config, have: Config) -> bool:
    """`BAKER_JOBS` with the old catch-all subject and nothing else different: every subject
    a client publishes to (dispatch, status, result, step) is still in the new list."""
    others = tuple(f for f in _STREAM_FIELDS if f != "subjects")
    return (
        want["name"] == JOBS_STREAM
        and sorted(have.get("subjects") or []) == OLD_JOBS_SUBJECTS
        and not differences(want, have, others)
    )


def _upgradable(want: Config, have: Config) -> bool:
    """The first wave's `brain-ingest` (one wildcard filter) may become today's (the same
    messages, named subject by subject); nothing else is changed on a live consumer."""
    others = [f for f in _CONSUMER_FIELDS if f not in ("filter_subject", "filter_subjects")]
    return (
        want.get("durable_name") == INGEST_CONSUMER
        and have.get("filter_subject") == FIRST_WAVE_INGEST_FILTER
        and not differences(want, have, tuple(others))
    )


async def provision(
    client: Client, topo: Topology | None = None, *, scale: bool = False
) -> dict[str, str]:
    """Every stream and consumer of the system; returns what was created or found. With
    `scale`, streams whose replicas alone differ from `topo.replicas` are changed in place
    (`baker provision`); without, they are reported (a daemon starting)."""
    topo = topo or Topology()
    done: dict[str, str] = {}
    streams = (
        jobs_stream, events_stream, tasks_stream, advisories_stream, cancels_stream, leader_stream,
        idempotency_stream, leases_stream,
    )  # fmt: skip
    for config in streams:
        cfg = config(topo)
        make = functools.partial(ensure_stream, client, cfg, scale=scale)
        done[str(cfg["name"])] = await jsapi.patiently(make, ELECTION)
    # The ingest first: a first wave's (`baker.jobs.*.>`) overlaps the lanes' subjects, and a
    # work-queue stream refuses a lane consumer until it is narrowed.
    for stream, consumer in (
        (JOBS_STREAM, ingest_consumer),
        (JOBS_STREAM, workers_consumer),
        (JOBS_STREAM, high_lane_consumer),
        (JOBS_STREAM, low_lane_consumer),
        (ADVISORIES_STREAM, advisories_consumer),
        (TASKS_STREAM, tasks_consumer),
    ):
        ccfg = consumer(topo)
        ensure = functools.partial(ensure_consumer, client, stream, ccfg)
        done[f"{stream}/{ccfg['durable_name']}"] = await jsapi.patiently(ensure, ELECTION)
    return done
