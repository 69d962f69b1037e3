"""The extensions registry of `baker monitor` on a real nats-server and JetStream event store.

Time is a fake clock: offline detection is driven by moving it one sweep at a time
(`tests/support/monitor.py`), so no test waits for heartbeat intervals to pass. The same
timing logic is unit-tested on the in-memory bus and store in `tests/unit/test_monitor_timing.py`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from adapters.eventstore import History
from adapters.nats.bus import NatsBus
from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from services.monitor import MonitorSettings
from tests.fakes.clock import FakeClock
from tests.fakes.mcp_server import FakeMcp, tool
from tests.polling import until
from tests.support import monitor as support
from tests.support.monitor import Running, types

ANNOUNCE, HEARTBEAT, DEREGISTER = (
    "baker.extensions.announce",
    "baker.extensions.heartbeat",
    "baker.extensions.deregister",
)
# The defaults of DESIGN §5 (30 s heartbeats, offline after 3 missed: 90 s; a sweep every
# 5 s) on a fake clock; MCP discovery retries quickly (real HTTP, not timing under test).
CALM = MonitorSettings(discovery_retries=3, discovery_delay=0.01)


@contextlib.asynccontextmanager
async def running(
    nc: Client,
    store: JetStreamEventStore,
    settings: MonitorSettings = CALM,
    clock: FakeClock | None = None,
) -> AsyncIterator[Running]:
    async with support.running(NatsBus(nc), store, clock or FakeClock(), settings) as m:
        yield m


async def history_until(store: JetStreamEventStore, ext_id: str, check: Any) -> History:
    return await support.history_until(store, "extension", ext_id, check)


def announce(ext_id: str, url: str, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {"id": ext_id, "name": ext_id.removeprefix("ext-"), "version": version,
            "description": "test extension", "mcpUrl": url, **extra}  # fmt: skip


async def publish(nc: Client, subject: str, doc: dict[str, Any] | bytes) -> None:
    nc.publish(subject, doc if isinstance(doc, bytes) else json.dumps(doc).encode())
    await nc.flush()


async def heartbeat(nc: Client, m: Running, subject: str = HEARTBEAT, doc: Any = None) -> None:
    """One extension heartbeat, handled by the monitor before this returns."""
    handled = m.stats["extension_heartbeats"] + 1
    await publish(nc, subject, {"id": "ext-weather"} if doc is None else doc)
    await until(lambda: m.stats["extension_heartbeats"] >= handled, "the heartbeat handled")


async def test_announce_records_the_extension_and_its_tools_after_retries(
    provisioned: Client,
) -> None:
    store = JetStreamEventStore(provisioned)
    with FakeMcp([tool("forecast"), tool("alerts")], fail_first=2) as mcp:
        async with running(provisioned, store) as monitor:
            await publish(provisioned, ANNOUNCE, announce("ext-weather", mcp.url))
            history = await history_until(
                store, "ext-weather", lambda t: "ExtensionToolsDiscovered" in t
            )
            assert types(history) == ["ExtensionAnnounced", "ExtensionToolsDiscovered"]
            assert history.state.status == "online"
            assert [t["name"] for t in history.state.tools] == ["forecast", "alerts"]
            assert mcp.methods().count("initialize") == 3  # two failures, then it worked
            assert monitor.stats["discoveries"] == 1 and monitor.stats["discovery_failures"] == 0
    await store.close()


async def test_repeated_announces_and_heartbeats_add_no_events(provisioned: Client) -> None:
    store = JetStreamEventStore(provisioned)
    with FakeMcp([tool("forecast")]) as mcp:
        async with running(provisioned, store) as monitor:
            doc = announce("ext-weather", mcp.url, tools=["forecast"])
            await publish(provisioned, ANNOUNCE, doc)
            await until(lambda: monitor.stats["discoveries"] == 1, "tools were discovered")
            before = types(await store.load("extension", "ext-weather"))
            for i in range(5):
                await publish(provisioned, ANNOUNCE, doc)
                beat = {"id": "ext-weather", "timestamp": datetime.now(UTC).isoformat(),
                        "uptime": i, "activeRequests": 0}  # fmt: skip
                await publish(provisioned, HEARTBEAT, beat)
                await publish(provisioned, "baker.extensions.ext-weather.heartbeat", beat)
            await until(
                lambda: (
                    monitor.stats["announces"] == 6 and monitor.stats["extension_heartbeats"] == 10
                ),
                "every message was handled",
            )
            assert types(await store.load("extension", "ext-weather")) == before
            assert before == ["ExtensionAnnounced", "ExtensionToolsDiscovered"]
            assert mcp.methods().count("tools/list") == 1  # no rediscovery on a keepalive
            assert monitor.stats["malformed"] == 0 and monitor.stats["unknown_extensions"] == 0
    await store.close()


async def test_missed_heartbeats_go_offline_and_a_heartbeat_brings_it_back(
    provisioned: Client,
) -> None:
    store = JetStreamEventStore(provisioned)
    with FakeMcp([tool("forecast")]) as mcp:
        async with running(provisioned, store) as m:
            await publish(provisioned, ANNOUNCE, announce("ext-weather", mcp.url))
            await until(lambda: m.stats["discoveries"] == 1, "tools were discovered")
            for _ in range(6):  # heartbeats every 30 s keep it online for three minutes...
                await m.sweep_for(30)
                await heartbeat(provisioned, m)
            last_beat = m.clock.wall()
            await m.sweep_for(90)  # ...and silence for exactly the timeout changes nothing yet
            assert "ExtensionWentOffline" not in types(await store.load("extension", "ext-weather"))
            await m.sweep()  # the first sweep past three missed heartbeats
            history = await store.load("extension", "ext-weather")
            offline: Any = history.events[-1].envelope.data
            assert types(history)[-1] == "ExtensionWentOffline"
            assert offline.last_seen == last_beat and offline.missed_heartbeats == 3
            assert history.state.status == "offline"
            # Back online on the next heartbeat; tools changed meanwhile are rediscovered.
            mcp.set_tools([tool("forecast"), tool("radar")])
            await heartbeat(provisioned, m, "baker.extensions.ext-weather.heartbeat", b"{}")
            history = await history_until(
                store, "ext-weather", lambda t: t.count("ExtensionToolsDiscovered") == 2
            )
            assert types(history) == [
                "ExtensionAnnounced", "ExtensionToolsDiscovered", "ExtensionWentOffline",
                "ExtensionCameOnline", "ExtensionToolsDiscovered",
            ]  # fmt: skip
            assert [t["name"] for t in history.state.tools] == ["forecast", "radar"]
            assert (m.stats["went_offline"], m.stats["came_online"]) == (1, 1)
    await store.close()


async def test_re_announcing_is_a_keepalive_too(provisioned: Client) -> None:
    store = JetStreamEventStore(provisioned)
    with FakeMcp([tool("forecast")]) as mcp:
        async with running(provisioned, store) as m:
            for i in range(1, 7):  # upstream SDKs re-announce every beat instead
                await publish(provisioned, ANNOUNCE, announce("ext-weather", mcp.url))
                await until(lambda i=i: m.stats["announces"] == i, "the announce handled")
                await m.sweep_for(30)
            await until(lambda: m.stats["discoveries"] == 1, "tools were discovered")
            history = await store.load("extension", "ext-weather")
            assert types(history) == ["ExtensionAnnounced", "ExtensionToolsDiscovered"]
            await m.sweep_for(65)  # 95 s since the last announce
            await history_until(store, "ext-weather", lambda t: "ExtensionWentOffline" in t)
    await store.close()


async def test_a_new_version_is_announced_again_and_deregister_ends_it(provisioned: Client) -> None:
    store = JetStreamEventStore(provisioned)
    with FakeMcp([tool("forecast")]) as old, FakeMcp([tool("forecast"), tool("radar")]) as new:
        async with running(provisioned, store) as monitor:
            await publish(provisioned, ANNOUNCE, announce("ext-weather", old.url))
            await until(lambda: monitor.stats["discoveries"] == 1, "tools were discovered")
            await publish(provisioned, ANNOUNCE, announce("ext-weather", new.url, "2.0.0"))
            history = await history_until(
                store, "ext-weather", lambda t: t.count("ExtensionToolsDiscovered") == 2
            )
            assert types(history) == [
                "ExtensionAnnounced", "ExtensionToolsDiscovered",
                "ExtensionAnnounced", "ExtensionToolsDiscovered",
            ]  # fmt: skip
            assert history.state.ext_version == "2.0.0" and history.state.mcp_url == new.url
            assert new.methods().count("tools/list") == 1
            await publish(provisioned, DEREGISTER, {"id": "ext-weather", "reason": "scaled to 0"})
            history = await history_until(
                store, "ext-weather", lambda t: t[-1] == "ExtensionDeregistered"
            )
            assert history.state.status == "deregistered"
            assert history.events[-1].envelope.data.reason == "scaled to 0"  # type: ignore[attr-defined]
            # Heartbeats after that change nothing; a new announce registers it again.
            await publish(provisioned, HEARTBEAT, {"id": "ext-weather"})
            await publish(provisioned, DEREGISTER, {"id": "ext-weather"})
            await until(lambda: monitor.stats["deregisters"] == 2, "the deregisters were handled")
            assert len((await store.load("extension", "ext-weather")).events) == 5
            await publish(provisioned, ANNOUNCE, announce("ext-weather", new.url, "2.0.0"))
            history = await history_until(
                store, "ext-weather", lambda t: t[-1] == "ExtensionAnnounced"
            )
            assert history.state.status == "online"
    await store.close()


async def test_malformed_messages_are_counted_and_the_loop_keeps_working(
    provisioned: Client,
) -> None:
    store = JetStreamEventStore(provisioned)
    bad = [
        (ANNOUNCE, b"not json"),
        (ANNOUNCE, b"[1, 2]"),
        (ANNOUNCE, json.dumps({"name": "x", "version": "1", "mcpUrl": "http://h/mcp"}).encode()),
        (ANNOUNCE, json.dumps(announce("ext.dotted", "http://h/mcp")).encode()),
        (ANNOUNCE, json.dumps(announce("ext-x", "not a url")).encode()),
        (ANNOUNCE, json.dumps({**announce("ext-x", "http://h/mcp"), "version": 2}).encode()),
        (HEARTBEAT, b""),
        (HEARTBEAT, b'{"id": 42}'),
        (HEARTBEAT, b'{"id": "ext-x", "uptime": "long"}'),
        ("baker.extensions.ext-x.heartbeat", b'{"id": "ext-y"}'),
        (DEREGISTER, b'{"reason": "no id"}'),
        (DEREGISTER, b'{"id": "a b"}'),
    ]
    with FakeMcp([tool("ping")]) as mcp:
        async with running(provisioned, store) as monitor:
            for subject, data in bad:
                await publish(provisioned, subject, data)
            await publish(provisioned, HEARTBEAT, {"id": "ext-never-announced"})
            await until(lambda: monitor.stats["malformed"] == len(bad), "all were counted")
            await until(lambda: monitor.stats["unknown_extensions"] == 1, "unknown counted")
            assert not (await store.load("extension", "ext-never-announced")).exists
            assert not (await store.load("extension", "ext-x")).exists
            await publish(provisioned, ANNOUNCE, announce("ext-ping", mcp.url))
            await history_until(store, "ext-ping", lambda t: "ExtensionToolsDiscovered" in t)
            assert monitor.stats["errors"] == 0
    await store.close()


async def test_a_failed_discovery_leaves_it_online_and_never_blocks_other_messages(
    provisioned: Client,
) -> None:
    store = JetStreamEventStore(provisioned)
    slow = MonitorSettings(discovery_retries=2, discovery_delay=0.5)
    with FakeMcp([tool("slow")], fail_first=100) as broken, FakeMcp([tool("ping")]) as fine:
        async with running(provisioned, store, slow) as monitor:
            await publish(provisioned, ANNOUNCE, announce("ext-broken", broken.url))
            await until(lambda: len(broken.requests) == 1, "discovery of ext-broken started")
            await publish(provisioned, ANNOUNCE, announce("ext-fine", fine.url))
            await history_until(store, "ext-fine", lambda t: "ExtensionToolsDiscovered" in t)
            assert monitor.stats["discovery_failures"] == 0  # ext-broken is still retrying
            await until(lambda: monitor.stats["discovery_failures"] == 1, "discovery gave up")
            history = await store.load("extension", "ext-broken")
            assert types(history) == ["ExtensionAnnounced"]
            assert history.state.status == "online" and history.state.tools == ()
            # As upstream does, the next (unchanged) announce tries the discovery again.
            broken.fail_next(0)
            await publish(provisioned, ANNOUNCE, announce("ext-broken", broken.url))
            history = await history_until(
                store, "ext-broken", lambda t: "ExtensionToolsDiscovered" in t
            )
            assert types(history) == ["ExtensionAnnounced", "ExtensionToolsDiscovered"]
    await store.close()


async def test_a_restarted_monitor_keeps_what_it_knew_and_gives_a_full_grace_period(
    provisioned: Client,
) -> None:
    clock = FakeClock()
    first_store = JetStreamEventStore(provisioned)
    with FakeMcp([tool("forecast")]) as mcp:
        async with running(provisioned, first_store, clock=clock) as first:
            await publish(provisioned, ANNOUNCE, announce("ext-weather", mcp.url))
            await until(lambda: first.stats["discoveries"] == 1, "tools were discovered")
        await first_store.close()
        await clock.advance(600)  # the monitor is down for longer than the offline timeout
        store = JetStreamEventStore(provisioned)  # a new process: nothing cached
        async with running(provisioned, store, clock=clock) as second:
            assert second.monitor.extensions.known["ext-weather"].status == "online"
            await second.sweep_for(90)  # not offline at once: the whole timeout from the restart
            assert types(await store.load("extension", "ext-weather")) == [
                "ExtensionAnnounced", "ExtensionToolsDiscovered",
            ]  # fmt: skip
            await second.sweep()
            await history_until(store, "ext-weather", lambda t: "ExtensionWentOffline" in t)
            # ...and it still knows the extension: a bare heartbeat brings it back.
            await heartbeat(provisioned, second)
            await history_until(store, "ext-weather", lambda t: t[-1] == "ExtensionCameOnline")
            await until(lambda: second.stats["discoveries"] == 1, "tools were checked again")
            assert types(await store.load("extension", "ext-weather")) == [
                "ExtensionAnnounced", "ExtensionToolsDiscovered", "ExtensionWentOffline",
                "ExtensionCameOnline",
            ]  # fmt: skip
            assert second.stats["unknown_extensions"] == 0
    await store.close()


async def test_heartbeats_after_a_restart_keep_a_known_extension_online(
    provisioned: Client,
) -> None:
    store = JetStreamEventStore(provisioned)
    with FakeMcp([tool("forecast")]) as mcp:
        async with running(provisioned, store) as first:
            await publish(provisioned, ANNOUNCE, announce("ext-weather", mcp.url))
            await until(lambda: first.stats["discoveries"] == 1, "tools were discovered")
        fresh = JetStreamEventStore(provisioned)  # a new process: nothing cached
        async with running(provisioned, fresh) as second:
            for _ in range(6):  # twice the offline timeout, a heartbeat every 30 s
                await second.sweep_for(30)
                await heartbeat(provisioned, second)
            assert second.stats["unknown_extensions"] == 0
            history = await store.load("extension", "ext-weather")
            assert types(history) == ["ExtensionAnnounced", "ExtensionToolsDiscovered"]
    await fresh.close()
    await store.close()
