"""Streams and consumers of DESIGN §2, provisioned idempotently.

An existing stream whose configuration differs is reported field by field and left alone:
recreating it would lose jobs or, for `BAKER_EVENTS`, history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.manager import JetStreamManager

log = logging.getLogger("baker.provision")

JOBS_STREAM = "BAKER_JOBS"
EVENTS_STREAM = "BAKER_EVENTS"
TASKS_STREAM = "BAKER_TASKS"
ADVISORIES_STREAM = "BAKER_ADVISORIES"
DISPATCH_SUBJECT = "baker.jobs.dispatch"
WORKERS_CONSUMER = "workers"
INGEST_CONSUMER = "brain-ingest"
ADVISORIES_CONSUMER = "brain-advisories"
TASKS_CONSUMER = "brain-tasks"
CANCELS_BUCKET = "baker-cancels"
CANCELS_STREAM = f"KV_{CANCELS_BUCKET}"
CANCELS_PREFIX = f"$KV.{CANCELS_BUCKET}"
LEADER_BUCKET = "baker-leader"
LEADER_STREAM = f"KV_{LEADER_BUCKET}"
LEADER_KEY = f"$KV.{LEADER_BUCKET}.brain"
MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.*"
DAY = 86_400.0


class ProvisioningError(RuntimeError):
    """A stream or consumer exists with a configuration other than the one we need."""


@dataclass(frozen=True)
class Topology:
    replicas: int = 1
    max_queued_jobs: int = 10_000
    ack_wait: float = 60.0
    max_deliver: int = 3


def jobs_stream(topo: Topology) -> StreamConfig:
    return StreamConfig(
        name=JOBS_STREAM,
        subjects=["baker.jobs.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        max_age=DAY,
        storage=StorageType.FILE,
        num_replicas=topo.replicas,
        max_msgs=topo.max_queued_jobs,
        discard=DiscardPolicy.NEW,
        duplicate_window=120.0,
    )


def events_stream(topo: Topology) -> StreamConfig:
    return StreamConfig(
        name=EVENTS_STREAM,
        subjects=["baker.events.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=topo.replicas,
        max_age=0,
        max_msgs=-1,  # the log is never trimmed: pinned and checked, so a stream whose
        max_bytes=-1,  # limits would drop events is reported instead of used
        max_msgs_per_subject=-1,
        deny_delete=True,
        deny_purge=True,
        duplicate_window=120.0,
        allow_direct=True,
    )


def tasks_stream(topo: Topology) -> StreamConfig:
    # Not `baker.tasks.>`: `baker.tasks.launch` is core request/reply and must stay unanswered
    # by the stream.
    return StreamConfig(
        name=TASKS_STREAM,
        subjects=["baker.tasks.status.*", "baker.tasks.result.*"],
        retention=RetentionPolicy.WORK_QUEUE,
        max_age=DAY,
        storage=StorageType.FILE,
        num_replicas=topo.replicas,
        duplicate_window=120.0,
    )


def advisories_stream(topo: Topology) -> StreamConfig:
    """Max-deliveries advisories, kept so a Brain that was down still records them."""
    return StreamConfig(
        name=ADVISORIES_STREAM,
        subjects=[MAX_DELIVERIES_ADVISORY],
        retention=RetentionPolicy.LIMITS,
        max_age=7 * DAY,
        storage=StorageType.FILE,
        num_replicas=topo.replicas,
        duplicate_window=120.0,
    )


def leader_stream(topo: Topology) -> StreamConfig:
    """A KV bucket holding the active Brain and its fencing generation (compare-and-set)."""
    config = cancels_stream(topo)
    config.name, config.subjects, config.max_age = LEADER_STREAM, [f"$KV.{LEADER_BUCKET}.>"], 0
    return config


def cancels_stream(topo: Topology) -> StreamConfig:
    """A KV bucket (one value per job id) that signals cancel requests to workers."""
    return StreamConfig(
        name=CANCELS_STREAM,
        subjects=[f"{CANCELS_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        max_age=DAY,
        max_msgs_per_subject=1,
        storage=StorageType.FILE,
        num_replicas=topo.replicas,
        allow_rollup_hdrs=True,
        deny_delete=True,
        duplicate_window=120.0,
        allow_direct=True,
        discard=DiscardPolicy.NEW,
    )


def workers_consumer(topo: Topology) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=WORKERS_CONSUMER,
        filter_subject=DISPATCH_SUBJECT,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=topo.ack_wait,
        max_deliver=topo.max_deliver,
        max_ack_pending=10_000,
    )


INGEST_SUBJECTS = ["baker.jobs.status.*", "baker.jobs.result.*", "baker.jobs.step.*"]
"""What a worker reports, named one by one (multiple filters, 2.10+), so other subjects such
as `baker.jobs.dispatch.<lane>` can live in `BAKER_JOBS` beside the ingest's."""
FIRST_WAVE_INGEST_FILTER = "baker.jobs.*.>"  # the first wave's, updated in place on provision


def ingest_consumer(topo: Topology) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=INGEST_CONSUMER,
        filter_subjects=list(INGEST_SUBJECTS),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_deliver=-1,  # a status must never be dropped; bad ones are terminated explicitly
        max_ack_pending=10_000,
    )


def tasks_consumer(_topo: Topology) -> ConsumerConfig:
    """Task runners' status and result messages, for the Brain's task ingest."""
    return ConsumerConfig(
        durable_name=TASKS_CONSUMER,
        filter_subject="baker.tasks.>",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_deliver=-1,
        max_ack_pending=10_000,
    )


def advisories_consumer(_topo: Topology) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=ADVISORIES_CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_deliver=-1,
    )


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


def differences(want: Any, have: Any, fields: tuple[str, ...]) -> list[str]:
    """Human-readable `field: have X, want Y` for every field that differs."""
    out = []
    for name in fields:
        wanted, actual = getattr(want, name), getattr(have, name)
        if wanted is None:
            continue
        if name in ("subjects", "filter_subjects"):
            wanted, actual = sorted(wanted), sorted(actual or [])
        if isinstance(wanted, float) or isinstance(actual, float):
            same = abs(float(wanted or 0) - float(actual or 0)) < 1e-3
        else:
            same = wanted == actual or (not wanted and not actual)
        if not same:
            out.append(f"{name}: have {_show(actual)}, want {_show(wanted)}")
    return out


def _show(value: Any) -> str:
    return str(getattr(value, "value", value))


async def ensure_stream(jsm: JetStreamManager, want: StreamConfig) -> Literal["created", "ok"]:
    """Create the stream if missing; raise `ProvisioningError` if it exists and differs."""
    assert want.name is not None
    try:
        info = await jsm.stream_info(want.name)
    except NotFoundError:
        try:
            await jsm.add_stream(want)
            log.info("created stream %s", want.name)
            return "created"
        except BadRequestError:  # lost a race with another process creating it
            info = await jsm.stream_info(want.name)
    diffs = differences(want, info.config, _STREAM_FIELDS)
    if diffs:
        raise ProvisioningError(
            f"stream {want.name} exists with another configuration ({'; '.join(diffs)}); "
            "it is left untouched: edit or remove it by hand (nats stream edit/rm) if intended"
        )
    return "ok"


async def ensure_consumer(
    jsm: JetStreamManager, stream: str, want: ConsumerConfig
) -> Literal["created", "updated", "ok"]:
    """Create a durable consumer if missing, update a first-wave one whose only difference is
    a filter we narrowed, and raise `ProvisioningError` for any other difference."""
    assert want.durable_name is not None
    try:
        info = await jsm.consumer_info(stream, want.durable_name)
    except NotFoundError:
        await jsm.add_consumer(stream, want)
        log.info("created consumer %s on %s", want.durable_name, stream)
        return "created"
    diffs = differences(want, info.config, _CONSUMER_FIELDS)
    if diffs and _upgradable(want, info.config):
        # The server keeps the consumer's position and pending acks across the update.
        await jsm.add_consumer(stream, want)
        log.info("updated consumer %s on %s: %s", want.durable_name, stream, "; ".join(diffs))
        return "updated"
    if diffs:
        raise ProvisioningError(
            f"consumer {want.durable_name} on {stream} exists with another configuration "
            f"({'; '.join(diffs)}); remove it (nats consumer rm) to let baker recreate it"
        )
    return "ok"


def _upgradable(want: ConsumerConfig, have: ConsumerConfig) -> bool:
    """The first wave's `brain-ingest` (one wildcard filter) may become today's (the same
    messages, named subject by subject); nothing else is changed on a live consumer."""
    others = [f for f in _CONSUMER_FIELDS if f not in ("filter_subject", "filter_subjects")]
    return (
        want.durable_name == INGEST_CONSUMER
        and have.filter_subject == FIRST_WAVE_INGEST_FILTER
        and not differences(want, have, tuple(others))
    )


async def provision(jsm: JetStreamManager, topo: Topology | None = None) -> dict[str, str]:
    """Every stream and consumer of the system; returns what was created or found."""
    topo = topo or Topology()
    done: dict[str, str] = {}
    streams = (
        jobs_stream, events_stream, tasks_stream, advisories_stream, cancels_stream, leader_stream,
    )  # fmt: skip
    for config in streams:
        cfg = config(topo)
        done[str(cfg.name)] = await ensure_stream(jsm, cfg)
    for stream, consumer in (
        (JOBS_STREAM, workers_consumer),
        (JOBS_STREAM, ingest_consumer),
        (ADVISORIES_STREAM, advisories_consumer),
        (TASKS_STREAM, tasks_consumer),
    ):
        ccfg = consumer(topo)
        done[f"{stream}/{ccfg.durable_name}"] = await ensure_consumer(jsm, stream, ccfg)
    return done
