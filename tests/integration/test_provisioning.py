"""Streams and consumers exactly as DESIGN §2; an existing different config is reported.
Provisioned by our client, read back by plain nats-py (`raw_nc`)."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.streams import (
    ProvisioningError,
    Topology,
    events_stream,
    ingest_consumer,
    provision,
    workers_consumer,
)


async def test_provisioning_is_idempotent_and_matches_the_design(nc: Client, raw_nc: NATS) -> None:
    first = await provision(nc)
    assert set(first.values()) == {"created"}
    assert set((await provision(nc)).values()) == {"ok"}

    jsm = raw_nc.jsm()
    jobs = (await jsm.stream_info("BAKER_JOBS")).config
    assert jobs.subjects == ["baker.jobs.>"]
    assert jobs.retention == RetentionPolicy.WORK_QUEUE
    assert (jobs.max_age, jobs.max_msgs, jobs.discard) == (86400, 10000, DiscardPolicy.NEW)
    assert jobs.storage == StorageType.FILE and jobs.num_replicas == 1

    events = (await jsm.stream_info("BAKER_EVENTS")).config
    assert events.subjects == ["baker.events.>"]
    assert events.retention == RetentionPolicy.LIMITS
    assert events.deny_delete and events.deny_purge and events.allow_direct
    assert events.duplicate_window == 120 and not events.max_age

    workers = (await jsm.consumer_info("BAKER_JOBS", "workers")).config
    assert (workers.filter_subject, workers.ack_wait, workers.max_deliver) == (
        "baker.jobs.dispatch", 60, 3,
    )  # fmt: skip
    ingest = (await jsm.consumer_info("BAKER_JOBS", "brain-ingest")).config
    assert sorted(ingest.filter_subjects or []) == [
        "baker.jobs.result.*", "baker.jobs.status.*", "baker.jobs.step.*",
    ]  # fmt: skip


async def test_other_dispatch_subjects_can_live_beside_the_ingest(nc: Client, raw_nc: NATS) -> None:
    """A work-queue stream refuses overlapping consumers: with the ingest's subjects named one by
    one, a consumer of `baker.jobs.dispatch.<lane>` fits beside it."""
    jsm = raw_nc.jsm()
    await provision(nc)
    lane = ConsumerConfig(durable_name="lane-high", filter_subject="baker.jobs.dispatch.high")
    await jsm.add_consumer("BAKER_JOBS", lane)
    assert (await jsm.consumer_info("BAKER_JOBS", "lane-high")).config.filter_subject


async def test_a_first_wave_ingest_consumer_is_updated_in_place(nc: Client, raw_nc: NATS) -> None:
    jsm = raw_nc.jsm()
    await provision(nc)
    await jsm.delete_consumer("BAKER_JOBS", "brain-ingest")
    old = ingest_consumer(Topology())
    del old["filter_subjects"]
    old["filter_subject"] = "baker.jobs.*.>"
    await jsapi.add_consumer(nc, "BAKER_JOBS", old)
    js = raw_nc.jetstream()
    for n in range(3):
        await js.publish(f"baker.jobs.status.job-{n}", b"{}")
    sub = await js.pull_subscribe_bind("brain-ingest", "BAKER_JOBS")
    (first,) = await sub.fetch(1)
    await first.ack_sync()

    done = await provision(nc)
    assert done["BAKER_JOBS/brain-ingest"] == "updated"
    info = await jsm.consumer_info("BAKER_JOBS", "brain-ingest")
    assert not info.config.filter_subject and len(info.config.filter_subjects or []) == 3
    assert (info.delivered.stream_seq, info.num_pending) == (1, 2)  # its position is kept
    assert (await provision(nc))["BAKER_JOBS/brain-ingest"] == "ok"


async def test_a_different_existing_stream_is_reported_and_left_alone(
    nc: Client, raw_nc: NATS
) -> None:
    jsm = raw_nc.jsm()
    await jsm.add_stream(
        StreamConfig(name="BAKER_EVENTS", subjects=["baker.events.>"], max_age=3600)
    )
    await raw_nc.jetstream().publish("baker.events.job.job-1", b"{}")
    with pytest.raises(ProvisioningError) as err:
        await provision(nc)
    text = str(err.value)
    assert "BAKER_EVENTS" in text and "max_age: have 3600" in text and "deny_delete" in text
    info = await jsm.stream_info("BAKER_EVENTS")
    assert info.config.max_age == 3600 and info.state.messages == 1  # untouched


async def test_an_event_stream_whose_limits_would_drop_events_is_refused(nc: Client) -> None:
    config = events_stream(Topology())
    config["max_msgs_per_subject"] = 1  # otherwise exactly ours: would keep one event per job
    await jsapi.add_stream(nc, config)
    with pytest.raises(ProvisioningError, match="max_msgs_per_subject: have 1, want -1"):
        await provision(nc)


async def test_a_differing_consumer_is_reported_and_left_alone(nc: Client, raw_nc: NATS) -> None:
    jsm = raw_nc.jsm()
    await provision(nc)
    await jsm.delete_consumer("BAKER_JOBS", "workers")
    await jsapi.add_consumer(nc, "BAKER_JOBS", workers_consumer(Topology(ack_wait=5)))
    with pytest.raises(ProvisioningError, match=r"ack_wait: have 5\.0, want 60\.0"):
        await provision(nc)
    info = await jsm.consumer_info("BAKER_JOBS", "workers")
    assert info.config.ack_wait == 5
