"""Service health in `baker monitor`: up/down flips only, on a real nats-server and event store.

Time is a fake clock moved one sweep at a time (`tests/support/monitor.py`); the real path
here is NATS delivery and the JetStream event store. The timing logic on its own is
unit-tested in `tests/unit/test_monitor_timing.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.eventstore import History
from adapters.nats.bus import NatsBus
from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from services import heartbeat
from services.heartbeat import HEALTH_SUBJECT, health_message
from services.monitor import MonitorSettings
from tests.fakes.clock import FakeClock
from tests.polling import until
from tests.support import monitor as support
from tests.support.monitor import Running, types

DEFAULT = MonitorSettings()  # 30 s heartbeats, down after 3 missed (90 s), a sweep every 5 s


@contextlib.asynccontextmanager
async def running(
    nc: Client, store: JetStreamEventStore, clock: FakeClock | None = None
) -> AsyncIterator[Running]:
    async with support.running(NatsBus(nc), store, clock or FakeClock(), DEFAULT) as m:
        yield m


async def history_until(store: JetStreamEventStore, instance: str, check: Any) -> History:
    return await support.history_until(store, "service", instance, check)


async def beat(nc: Client, m: Running, service: str, instance: str, status: str = "up") -> None:
    """One heartbeat of `instance`, handled by the monitor before this returns."""
    handled = m.stats["health_heartbeats"] + 1
    msg = health_message(service, instance, 0.0, {"n": 1}, status, m.clock)
    nc.publish(HEALTH_SUBJECT, msg)
    await until(lambda: m.stats["health_heartbeats"] >= handled, f"{instance}'s beat handled")


async def test_up_once_down_when_silent_and_up_again(provisioned: Client) -> None:
    store = JetStreamEventStore(provisioned)
    async with running(provisioned, store) as m:
        for _ in range(4):  # both beat every 30 s for two minutes
            await beat(provisioned, m, "brain", "b-1")
            await beat(provisioned, m, "worker", "w-1")
            await m.sweep_for(30)
        assert types(await store.load("service", "w-1")) == ["ServiceUp"]  # one event, no more
        w1 = m.monitor.snapshot()["w-1"]
        assert (w1["service"], w1["status"], w1["details"]) == ("worker", "up", {"n": 1})
        assert w1["version"] == heartbeat.VERSION
        assert datetime.fromisoformat(w1["lastSeen"]) == m.clock.wall() - timedelta(seconds=30)
        # The worker goes silent (no "stopping": as if it crashed); the brain keeps beating.
        last_beat = m.clock.wall() - timedelta(seconds=30)
        await beat(provisioned, m, "brain", "b-1")
        await m.sweep_for(55)  # 85 s since the worker's last beat: still up
        assert types(await store.load("service", "w-1")) == ["ServiceUp"]
        await beat(provisioned, m, "brain", "b-1")
        await m.sweep()  # 90 s: not past the timeout yet
        assert types(await store.load("service", "w-1")) == ["ServiceUp"]
        await m.sweep()  # 95 s
        history = await history_until(store, "w-1", lambda t: t == ["ServiceUp", "ServiceDown"])
        down: Any = history.events[-1].envelope.data
        assert down.last_seen == last_beat and "no heartbeat for 90s" in down.reason
        assert m.monitor.snapshot()["w-1"]["status"] == "down"
        assert m.monitor.snapshot()["b-1"]["status"] == "up"
        assert types(await store.load("service", "b-1")) == ["ServiceUp"]
        # It comes back.
        await beat(provisioned, m, "worker", "w-1")
        await history_until(store, "w-1", lambda t: t == ["ServiceUp", "ServiceDown", "ServiceUp"])
        assert m.monitor.snapshot()["w-1"]["status"] == "up"
        # b-1, w-1 twice, and the monitor itself; w-1 down once
        assert (m.stats["services_up"], m.stats["services_down"]) == (4, 1)
    await store.close()


async def test_a_stopping_heartbeat_is_down_at_once(provisioned: Client) -> None:
    store = JetStreamEventStore(provisioned)
    async with running(provisioned, store) as m:
        stop = asyncio.Event()
        beating = asyncio.create_task(
            heartbeat.beat(
                NatsBus(provisioned), "projector", "proj-1", dict, stop, 30, None, m.clock
            )
        )
        await history_until(store, "proj-1", lambda t: t == ["ServiceUp"])
        stop.set()
        await beating
        history = await history_until(store, "proj-1", lambda t: t == ["ServiceUp", "ServiceDown"])
        assert "stopping" in history.events[-1].envelope.data.reason  # type: ignore[attr-defined]
        assert m.monitor.sweeps == 0  # no time passed: the sweeper had nothing to do with it
    await store.close()


async def test_bad_heartbeats_are_counted_and_good_ones_still_work(provisioned: Client) -> None:
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
    async with running(provisioned, store) as m:
        for data in bad:
            provisioned.publish(HEALTH_SUBJECT, data)
        await provisioned.flush()
        await until(lambda: m.stats["health_malformed"] == len(bad), "all were counted")
        assert "w-1" not in m.monitor.snapshot() and "w.1" not in m.monitor.snapshot()
        provisioned.publish(HEALTH_SUBJECT, health_message("worker", "w-1", 0.0, {}))
        await history_until(store, "w-1", lambda t: t == ["ServiceUp"])
        assert m.stats["malformed"] == len(bad) and m.stats["errors"] == 0
    await store.close()


async def test_a_restart_keeps_services_up_for_a_full_grace_period(provisioned: Client) -> None:
    clock = FakeClock()
    store = JetStreamEventStore(provisioned)
    async with running(provisioned, store, clock) as first:
        await beat(provisioned, first, "worker", "w-1")
        await history_until(store, "w-1", lambda t: t == ["ServiceUp"])
    await clock.advance(600)  # the monitor is down for longer than the timeout
    fresh = JetStreamEventStore(provisioned)
    restarted_at = datetime.now(UTC)
    async with running(provisioned, fresh, clock) as second:
        assert second.monitor.snapshot()["w-1"]["status"] == "up"  # known from the log
        await second.sweep_for(90)
        assert types(await fresh.load("service", "w-1")) == ["ServiceUp"]  # not down at once
        await second.sweep()
        history = await history_until(fresh, "w-1", lambda t: t == ["ServiceUp", "ServiceDown"])
        assert history.events[-1].envelope.occurred_at >= restarted_at
        # The monitor watches itself too (its own heartbeat, same instance as before).
        assert second.monitor.snapshot()["monitor-test"]["status"] == "up"
    await fresh.close()
    await store.close()
