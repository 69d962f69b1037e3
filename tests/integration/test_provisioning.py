"""Streams and consumers exactly as DESIGN §2; an existing different config is reported.
Provisioned by our client, read back by plain nats-py (`raw_nc`)."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.output import NatsOutput
from adapters.nats.streams import (
    ProvisioningError,
    Topology,
    events_stream,
    ingest_consumer,
    jobs_stream,
    provision,
    workers_consumer,
)
from domain.wire_output import encode_output


async def test_provisioning_is_idempotent_and_matches_the_design(nc: Client, raw_nc: NATS) -> None:
    first = await provision(nc)
    assert set(first.values()) == {"created"}
    assert set((await provision(nc)).values()) == {"ok"}

    jsm = raw_nc.jsm()
    jobs = (await jsm.stream_info("BAKER_JOBS")).config
    assert sorted(jobs.subjects or []) == [
        "baker.jobs.dispatch", "baker.jobs.dispatch.>", "baker.jobs.result.*",
        "baker.jobs.status.*", "baker.jobs.step.*",
    ]  # fmt: skip
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
    one, the priority lanes' consumers (`baker.jobs.dispatch.<lane>`) fit beside it, and the
    first wave's `workers` keeps the plain subject (the normal lane)."""
    jsm = raw_nc.jsm()
    await provision(nc)
    filters = {
        name: (await jsm.consumer_info("BAKER_JOBS", name)).config.filter_subject
        for name in ("workers-high", "workers", "workers-low")
    }
    assert filters == {
        "workers-high": "baker.jobs.dispatch.high",
        "workers": "baker.jobs.dispatch",
        "workers-low": "baker.jobs.dispatch.low",
    }
    other = ConsumerConfig(durable_name="lane-other", filter_subject="baker.jobs.dispatch.other")
    await jsm.add_consumer("BAKER_JOBS", other)
    assert (await provision(nc))["BAKER_JOBS/workers-high"] == "ok"


async def test_a_first_wave_ingest_consumer_is_updated_in_place(nc: Client, raw_nc: NATS) -> None:
    jsm = raw_nc.jsm()
    await provision(nc)
    for name in ("brain-ingest", "workers-high", "workers-low"):  # the first wave had no lanes
        await jsm.delete_consumer("BAKER_JOBS", name)
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
    assert done["BAKER_JOBS/workers-high"] == done["BAKER_JOBS/workers-low"] == "created"
    assert done["BAKER_JOBS/workers"] == "ok"  # the normal lane: the first wave's, unchanged
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


async def test_an_older_jobs_stream_gets_the_named_subjects_in_place(
    nc: Client, raw_nc: NATS
) -> None:
    """`BAKER_JOBS` as it was before live output (`baker.jobs.>`), holding a queued job and a
    report, with the first wave's ingest filter: provisioning narrows its subjects and keeps
    its messages and consumers; seed-protocol subjects are still stored."""
    old = {**jobs_stream(Topology()), "subjects": ["baker.jobs.>"]}
    await jsapi.add_stream(nc, old)
    js = raw_nc.jetstream()
    await js.publish("baker.jobs.dispatch", b'{"id": "job-1"}')
    await js.publish("baker.jobs.status.job-0", b'{"id": "job-0", "status": "running"}')

    done = await provision(nc)
    assert done["BAKER_JOBS"] == "updated"
    jsm = raw_nc.jsm()
    info = await jsm.stream_info("BAKER_JOBS")
    assert "baker.jobs.>" not in (info.config.subjects or [])
    assert info.state.messages == 2  # nothing lost
    assert (await provision(nc))["BAKER_JOBS"] == "ok"
    for subject in ("baker.jobs.dispatch", "baker.jobs.result.job-0", "baker.jobs.step.job-0"):
        await js.publish(subject, b"{}")  # a seed worker's subjects are still stored
    assert (await jsm.stream_info("BAKER_JOBS")).state.messages == 5


async def test_live_output_is_not_stored_in_the_jobs_stream(nc: Client, raw_nc: NATS) -> None:
    await provision(nc)
    jsm = raw_nc.jsm()
    before = (await jsm.stream_info("BAKER_JOBS")).state.messages
    heard: list[bytes] = []
    following = await NatsOutput(nc).follow("job-1", heard.append)
    NatsOutput(nc).send("job-1", encode_output("job-1", 1, 1, "stdout", "hello\n"))
    await nc.flush()
    await raw_nc.flush()
    assert heard and b"hello" in heard[0]  # a listener hears it ...
    assert (await jsm.stream_info("BAKER_JOBS")).state.messages == before  # ... nothing keeps it
    await following.unsubscribe()


async def test_replicas_other_than_baker_replicas_are_named_with_the_fix(nc: Client) -> None:
    await provision(nc)
    with pytest.raises(ProvisioningError) as err:
        await provision(nc, Topology(replicas=3))
    text = str(err.value)
    assert "stream BAKER_JOBS has 1 replica(s), BAKER_REPLICAS wants 3" in text
    assert "`BAKER_REPLICAS=3 baker provision`" in text and "BAKER_REPLICAS=1" in text
    assert "nats stream edit BAKER_JOBS --replicas 3" in text


async def test_a_single_server_refuses_more_replicas_and_says_what_is_needed(
    nc: Client, raw_nc: NATS
) -> None:
    await provision(nc)
    with pytest.raises(ProvisioningError) as err:
        await provision(nc, Topology(replicas=3), scale=True)
    text = str(err.value)
    assert "cannot change stream BAKER_JOBS from 1 to 3 replica(s)" in text
    assert "a JetStream cluster of at least 3 running nodes" in text
    assert (await raw_nc.jsm().stream_info("BAKER_JOBS")).config.num_replicas == 1
