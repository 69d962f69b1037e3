"""Service health in `baker monitor`: up/down flips only, on a real nats-server and event store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from nats.aio.client import Client as NATS

from adapters.eventstore import History
from adapters.nats.event_store import JetStreamEventStore
from services import heartbeat
from services.executor import CommandExecutor
from services.heartbeat import HEALTH_SUBJECT, health_message
from services.monitor import Monitor, MonitorSettings
from tests.polling import until

# 0.2 s heartbeats, down after 3 missed: 0.6 s.
FAST = MonitorSettings(heartbeat_every=0.2, missed=3, sweep_every=0.05)
TIMEOUT = timedelta(seconds=0.6)


@contextlib.asynccontextmanager
async def running(
    nc: NATS, store: JetStreamEventStore, settings: MonitorSettings
) -> AsyncIterator[Monitor]:
    monitor = Monitor(nc, CommandExecutor(store), settings, instance="monitor-test")
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    await until(lambda: monitor.ready.is_set() or task.done(), "the monitor restored its state")
    if task.done():
        task.result()
    try:
        yield monitor
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def pulse(nc: NATS, service: str, instance: str) -> AsyncIterator[list[datetime]]:
    """A service beating every 0.1 s until the block ends, then silent (as if it crashed).
    Yields the send times of its beats."""
    sent: list[datetime] = []
    started = time.monotonic()

    async def beat() -> None:
        while True:
            await nc.publish(HEALTH_SUBJECT, health_message(service, instance, started, {"n": 1}))
            sent.append(datetime.now(UTC))
            await asyncio.sleep(0.1)  # the heartbeat cadence under test

    task = asyncio.create_task(beat())
    try:
        yield sent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def history_until(
    store: JetStreamEventStore, instance: str, check: Callable[[list[str]], bool]
) -> History:
    deadline = time.monotonic() + 10
    while True:
        history = await store.load("service", instance)
        if check(types(history)):
            return history
        if time.monotonic() > deadline:
            raise AssertionError(f"{instance}: condition not met; events: {types(history)}")
        await asyncio.sleep(0.02)


def types(history: History) -> list[str]:
    return [e.envelope.type for e in history.events]


async def test_up_once_down_when_silent_and_up_again(provisioned: NATS) -> None:
    store = JetStreamEventStore(provisioned)
    async with running(provisioned, store, FAST) as monitor, pulse(provisioned, "brain", "b-1"):
        async with pulse(provisioned, "worker", "w-1") as worker_beats:
            await history_until(store, "b-1", lambda t: t == ["ServiceUp"])
            await history_until(store, "w-1", lambda t: t == ["ServiceUp"])
            beats = monitor.stats["health_heartbeats"]
            await until(lambda: monitor.stats["health_heartbeats"] > beats + 10, "more beats")
            assert monitor.sweeps > 0
            w1 = monitor.snapshot()["w-1"]
            assert (w1["service"], w1["status"], w1["details"]) == ("worker", "up", {"n": 1})
            assert w1["version"] == heartbeat.VERSION
            seen = datetime.fromisoformat(w1["lastSeen"])
            assert timedelta(0) <= datetime.now(UTC) - seen < timedelta(seconds=5)
        # The worker goes silent (no "stopping": as if it crashed); the brain keeps beating.
        history = await history_until(store, "w-1", lambda t: t == ["ServiceUp", "ServiceDown"])
        down = history.events[-1].envelope
        assert down.occurred_at - worker_beats[-1] >= TIMEOUT
        assert "no heartbeat" in down.data.reason  # type: ignore[attr-defined]
        assert monitor.snapshot()["w-1"]["status"] == "down"
        assert monitor.snapshot()["b-1"]["status"] == "up"
        assert types(await store.load("service", "b-1")) == ["ServiceUp"]
        # It comes back.
        async with pulse(provisioned, "worker", "w-1"):
            await history_until(
                store, "w-1", lambda t: t == ["ServiceUp", "ServiceDown", "ServiceUp"]
            )
            await until(lambda: monitor.snapshot()["w-1"]["status"] == "up", "w-1 is up")
        assert (monitor.stats["services_up"], monitor.stats["services_down"]) == (4, 1)
    await store.close()


async def test_a_stopping_heartbeat_is_down_at_once(provisioned: NATS) -> None:
    store = JetStreamEventStore(provisioned)
    # 30 s beats: the sweeper cannot be what puts the service down within this test.
    calm = MonitorSettings(sweep_every=0.05)
    async with running(provisioned, store, calm):
        stop = asyncio.Event()
        beating = asyncio.create_task(
            heartbeat.beat(provisioned, "projector", "proj-1", lambda: {}, stop, every=30)
        )
        await history_until(store, "proj-1", lambda t: t == ["ServiceUp"])
        stop.set()
        await beating
        history = await history_until(store, "proj-1", lambda t: t == ["ServiceUp", "ServiceDown"])
        assert "stopping" in history.events[-1].envelope.data.reason  # type: ignore[attr-defined]
    await store.close()


async def test_bad_heartbeats_are_counted_and_good_ones_still_work(provisioned: NATS) -> None:
    store = JetStreamEventStore(provisioned)
    bad = [
        b"not json",
        b"[]",
        b"{}",
        json.dumps({"service": "worker"}).encode(),
        json.dumps({"service": "worker", "instance": "w.1"}).encode(),
        json.dumps({"service": "worker", "instance": "w-1", "status": "exploded"}).encode(),
        json.dumps({"service": "worker", "instance": "w-1", "details": "x"}).encode(),
        json.dumps({"service": ["worker"], "instance": "w-1"}).encode(),
    ]
    async with running(provisioned, store, FAST) as monitor:
        for data in bad:
            await provisioned.publish(HEALTH_SUBJECT, data)
        await provisioned.flush()
        await until(lambda: monitor.stats["health_malformed"] == len(bad), "all were counted")
        assert "w-1" not in monitor.snapshot() and "w.1" not in monitor.snapshot()
        await provisioned.publish(HEALTH_SUBJECT, health_message("worker", "w-1", 0.0, {}))
        await history_until(store, "w-1", lambda t: t == ["ServiceUp"])
        assert monitor.stats["malformed"] == len(bad) and monitor.stats["errors"] == 0
    await store.close()


async def test_a_restart_keeps_services_up_for_a_full_grace_period(provisioned: NATS) -> None:
    store = JetStreamEventStore(provisioned)
    async with running(provisioned, store, FAST):
        async with pulse(provisioned, "worker", "w-1"):
            await history_until(store, "w-1", lambda t: t == ["ServiceUp"])
        stopped = time.monotonic()
    # The outage under test: the monitor is down for longer than the timeout.
    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - stopped)))
    fresh = JetStreamEventStore(provisioned)
    restarted_at = datetime.now(UTC)
    async with running(provisioned, fresh, FAST) as second:
        assert second.snapshot()["w-1"]["status"] == "up"  # known from the log
        await until(lambda: second.sweeps >= 3, "a few sweeps ran")
        assert types(await fresh.load("service", "w-1")) == ["ServiceUp"]  # not down at once
        history = await history_until(fresh, "w-1", lambda t: t == ["ServiceUp", "ServiceDown"])
        assert history.events[-1].envelope.occurred_at - restarted_at >= TIMEOUT
        # The monitor watches itself too (its own heartbeat, same instance as before).
        assert second.snapshot()["monitor-test"]["status"] == "up"
    await fresh.close()
    await store.close()
