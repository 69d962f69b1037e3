"""Offline and down detection of `baker monitor` on a fake clock, fake bus and in-memory store:
3 missed 30 s heartbeats (DESIGN §5), swept every 5 s; nothing waits on real time."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from adapters.eventstore import InMemoryEventStore
from services import heartbeat
from services.heartbeat import HEALTH_SUBJECT, health_message
from services.monitor import MonitorSettings
from tests.fakes.bus import FakeBus
from tests.fakes.clock import FakeClock
from tests.polling import until
from tests.support.monitor import history_until, running, types

ANNOUNCE, HEARTBEAT = "baker.extensions.announce", "baker.extensions.heartbeat"
URL = "http://ext.invalid/mcp"
DEFAULT = MonitorSettings()  # 30 s heartbeats, 3 missed: 90 s; a sweep every 5 s


class Tools:
    """A stand-in for MCP discovery: lists the names it holds now."""

    def __init__(self, *names: str) -> None:
        self.names = list(names)

    async def __call__(self, url: str) -> list[dict[str, Any]]:
        return [{"name": n, "description": "", "inputSchema": {}} for n in self.names]


def tools() -> Tools:
    return Tools("forecast")


def announce(ext_id: str = "ext-weather") -> bytes:
    doc = {"id": ext_id, "name": "weather", "version": "1.0.0", "mcpUrl": URL}
    return json.dumps(doc).encode()


async def beat(bus: FakeBus, ext_id: str = "ext-weather") -> None:
    await bus.publish(HEARTBEAT, json.dumps({"id": ext_id}).encode())
    await bus.settled()


async def test_an_extension_goes_offline_after_three_missed_heartbeats_not_before() -> None:
    bus, store, clock, listed = FakeBus(), InMemoryEventStore(), FakeClock(), tools()
    async with running(bus, store, clock, DEFAULT, discover=listed) as m:
        await bus.publish(ANNOUNCE, announce())
        await history_until(store, "extension", "ext-weather",
                            lambda t: "ExtensionToolsDiscovered" in t)  # fmt: skip
        for _ in range(10):  # five minutes of heartbeats every 30 s: always online
            await m.sweep_for(30)
            await beat(bus)
        last_beat = clock.wall()
        await m.sweep_for(90)  # silent for exactly the timeout: still online
        assert "ExtensionWentOffline" not in types(await store.load("extension", "ext-weather"))
        await m.sweep()  # the first sweep past it
        history = await store.load("extension", "ext-weather")
        assert types(history)[-1] == "ExtensionWentOffline"
        offline: Any = history.events[-1].envelope.data
        assert offline.last_seen == last_beat and offline.missed_heartbeats == 3
        assert m.stats["went_offline"] == 1 and m.monitor.extensions.online() == 0
        listed.names.append("radar")
        await beat(bus)  # the next heartbeat brings it back, and its tools are checked again
        rediscovered = lambda t: t.count("ExtensionToolsDiscovered") == 2  # noqa: E731
        history = await history_until(store, "extension", "ext-weather", rediscovered)
        assert types(history)[2:] == [
            "ExtensionWentOffline", "ExtensionCameOnline", "ExtensionToolsDiscovered",
        ]  # fmt: skip
        assert m.stats["came_online"] == 1


async def test_re_announcing_keeps_an_extension_online() -> None:
    bus, store, clock = FakeBus(), InMemoryEventStore(), FakeClock()
    async with running(bus, store, clock, DEFAULT, discover=tools()) as m:
        for _ in range(8):  # upstream SDKs re-announce instead of beating
            await bus.publish(ANNOUNCE, announce())
            await bus.settled()
            await m.sweep_for(60)
        history = await store.load("extension", "ext-weather")
        assert types(history) == ["ExtensionAnnounced", "ExtensionToolsDiscovered"]
        await m.sweep_for(95)
        assert types(await store.load("extension", "ext-weather"))[-1] == "ExtensionWentOffline"


async def test_a_service_is_down_after_the_timeout_and_at_once_when_stopping() -> None:
    bus, store, clock = FakeBus(), InMemoryEventStore(), FakeClock()
    async with running(bus, store, clock, DEFAULT) as m:
        started = clock.now()
        for instance in ("w-1", "b-1"):
            await bus.publish(
                HEALTH_SUBJECT, health_message("worker", instance, started, {}, clock=clock)
            )
        await bus.settled()
        last_beat = clock.wall()
        await m.sweep_for(90)
        assert types(await store.load("service", "w-1")) == ["ServiceUp"]
        await m.sweep()
        history = await store.load("service", "w-1")
        assert types(history) == ["ServiceUp", "ServiceDown"]
        down: Any = history.events[-1].envelope.data
        assert down.last_seen == last_beat and "no heartbeat for 90s (3 missed)" in down.reason
        assert m.monitor.snapshot()["w-1"]["status"] == "down"
        await bus.publish(HEALTH_SUBJECT, health_message("worker", "w-1", started, {}, clock=clock))
        await history_until(store, "service", "w-1", lambda t: t[-1] == "ServiceUp")
        stopping = health_message("worker", "w-1", started, {}, "stopping", clock)
        await bus.publish(HEALTH_SUBJECT, stopping)
        history = await history_until(store, "service", "w-1", lambda t: len(t) == 4)
        assert "is stopping" in history.events[-1].envelope.data.reason  # type: ignore[attr-defined]
        assert (m.stats["services_up"], m.stats["services_down"]) == (4, 3)  # b-1, the monitor


async def test_a_restarted_monitor_gives_everything_a_full_grace_period() -> None:
    bus, store, clock = FakeBus(), InMemoryEventStore(), FakeClock()
    async with running(bus, store, clock, DEFAULT, discover=tools()) as first:
        await bus.publish(ANNOUNCE, announce())
        await bus.publish(
            HEALTH_SUBJECT, health_message("worker", "w-1", clock.now(), {}, clock=clock)
        )
        await until(lambda: first.stats["discoveries"] == 1, "tools were discovered")
        await bus.settled()
    await clock.advance(600)  # ten minutes without a monitor: longer than any timeout
    async with running(bus, store, clock, DEFAULT, discover=tools()) as second:
        assert second.monitor.extensions.known["ext-weather"].status == "online"
        assert second.monitor.snapshot()["w-1"]["status"] == "up"
        await second.sweep_for(90)  # not offline at once: the whole timeout from the restart
        assert types(await store.load("extension", "ext-weather"))[-1] != "ExtensionWentOffline"
        assert types(await store.load("service", "w-1")) == ["ServiceUp"]
        await second.sweep()
        assert types(await store.load("extension", "ext-weather"))[-1] == "ExtensionWentOffline"
        assert types(await store.load("service", "w-1")) == ["ServiceUp", "ServiceDown"]
        await beat(bus)  # it still knows the extension: a bare heartbeat brings it back
        await history_until(store, "extension", "ext-weather",
                            lambda t: t[-1] == "ExtensionCameOnline")  # fmt: skip
        assert second.stats["unknown_extensions"] == 0


async def test_the_monitor_beats_every_thirty_seconds_of_its_clock() -> None:
    bus, store, clock = FakeBus(), InMemoryEventStore(), FakeClock()
    async with running(bus, store, clock, DEFAULT) as m:
        start = clock.wall()
        await m.sweep_for(90)
        await bus.settled()
        beats = [json.loads(msg.data) for msg in bus.published if msg.subject == HEALTH_SUBJECT]
        assert [b["instance"] for b in beats] == ["monitor-test"] * 4
        sent = [b["timestamp"] for b in beats]
        assert sent == [(start + timedelta(seconds=s)).isoformat() for s in (0, 30, 60, 90)]
        assert [b["uptime"] for b in beats] == [0, 30, 60, 90]
        assert beats[0]["version"] == heartbeat.VERSION
        assert m.monitor.snapshot()["monitor-test"]["status"] == "up"
