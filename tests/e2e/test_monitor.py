"""The monitor as its own process, and service health through `baker up`."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
from nats.aio.client import Client as NATS

from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from tests.e2e.procs import BakerProcess
from tests.e2e.system import running
from tests.fakes.mcp_server import FakeMcp, tool


async def event_types(store: JetStreamEventStore, agg: str, agg_id: str) -> list[str]:
    return [e.envelope.type for e in (await store.load(agg, agg_id)).events]


async def until(check, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)  # polling the event log


async def test_baker_monitor_registers_discovers_and_expires_an_extension(
    nats_server: NatsServerProcess, provisioned: NATS
) -> None:
    env = {
        "BAKER_NATS_URL": nats_server.url, "BAKER_HEARTBEAT_SECONDS": "0.3",
        "BAKER_MISSED_HEARTBEATS": "2", "BAKER_MONITOR_SWEEP_SECONDS": "0.1",
        "BAKER_MCP_DISCOVERY_DELAY_SECONDS": "0.1",
    }  # fmt: skip
    monitor = BakerProcess("monitor", env=env)
    monitor.wait_for("running")
    store = JetStreamEventStore(provisioned)
    with FakeMcp([tool("forecast"), tool("alerts")]) as mcp:
        announce = {
            "id": "ext-weather",
            "name": "weather",
            "version": "1.0.0",
            "description": "w",
            "mcpUrl": mcp.url,
        }

        # The monitor may still be restoring: announce until it is recorded.
        async def announced() -> bool:
            await provisioned.publish("baker.extensions.announce", json.dumps(announce).encode())
            return "ExtensionToolsDiscovered" in await event_types(
                store, "extension", "ext-weather"
            )

        await until(announced)
    history = (await store.load("extension", "ext-weather")).events
    tools = next(e for e in history if e.envelope.type == "ExtensionToolsDiscovered")
    assert [t["name"] for t in tools.envelope.data.tools] == ["forecast", "alerts"]

    async def offline() -> bool:
        return "ExtensionWentOffline" in await event_types(store, "extension", "ext-weather")

    await until(offline)  # no heartbeats: 2 missed 0.3 s intervals
    assert await event_types(store, "extension", "ext-weather") == [
        "ExtensionAnnounced",
        "ExtensionToolsDiscovered",
        "ExtensionWentOffline",
    ]  # fmt: skip — repeated announces added nothing
    assert monitor.stop(signal.SIGTERM) == 0
    await store.close()


async def test_health_lists_every_daemon_of_baker_up(tmp_path: Path) -> None:
    with running(tmp_path / "data", token="tok") as system:
        async with httpx.AsyncClient(base_url=system.url, headers=system.headers) as c:
            deadline = time.monotonic() + 30
            while True:
                health = (await c.get("/api/system/health")).json()
                services = {s["service"] for s in health["services"] if s["status"] == "up"}
                if {"brain", "worker", "projector", "monitor", "launcher"} <= services:
                    break
                assert time.monotonic() < deadline, health
                await asyncio.sleep(0.1)  # polling until every heartbeat has been recorded
            handoff = (await c.get("/api/system/handoff")).json()
    assert all(s.get("lastSeen") for s in health["services"] if s["status"] == "up")
    assert health["checks"]["nats"]["status"] == "healthy"
    assert handoff["active"]["instance"].startswith("brain-") and handoff["generation"] >= 1
