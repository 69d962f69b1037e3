"""The monitor as its own process, and service health through `baker up`.

These run the real daemons on real time (short heartbeat settings through the environment);
the timing logic itself is tested on a fake clock in `tests/unit/test_monitor_timing.py`.
Nothing here depends on how fast the machine is: every wait polls a condition.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NATS

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from tests.e2e.procs import BakerProcess
from tests.e2e.system import running
from tests.fakes.mcp_server import FakeMcp, tool
from tests.polling import until

DAEMONS = {"brain", "worker", "projector", "monitor", "launcher"}


async def event_types(store: JetStreamEventStore, agg: str, agg_id: str) -> list[str]:
    return [e.envelope.type for e in (await store.load(agg, agg_id)).events]


async def test_baker_monitor_registers_discovers_and_expires_an_extension(
    nats_server: NatsServerProcess, provisioned: Client, raw_nc: NATS
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
            await raw_nc.publish("baker.extensions.announce", json.dumps(announce).encode())
            return "ExtensionToolsDiscovered" in await event_types(
                store, "extension", "ext-weather"
            )

        await until(announced, "the announce recorded and its tools discovered", every=0.05)
    history = (await store.load("extension", "ext-weather")).events
    tools = next(e for e in history if e.envelope.type == "ExtensionToolsDiscovered")
    assert [t["name"] for t in tools.envelope.data.tools] == ["forecast", "alerts"]

    async def offline() -> bool:
        return "ExtensionWentOffline" in await event_types(store, "extension", "ext-weather")

    await until(offline, "offline after 2 missed 0.3 s heartbeats")
    seen = await event_types(store, "extension", "ext-weather")
    # A machine slow enough to leave 0.6 s between two announces may have flapped it offline
    # and back meanwhile; what must hold is the start, the end, and no second announce.
    assert seen[:2] == ["ExtensionAnnounced", "ExtensionToolsDiscovered"], seen
    assert seen[-1] == "ExtensionWentOffline" and seen.count("ExtensionAnnounced") == 1, seen
    assert monitor.stop(signal.SIGTERM) == 0
    await store.close()


async def test_health_lists_every_daemon_of_baker_up(tmp_path: Path) -> None:
    with running(tmp_path / "data", token="tok") as system:
        async with httpx.AsyncClient(base_url=system.url, headers=system.headers) as c:

            async def all_up() -> dict[str, Any] | None:
                health: dict[str, Any] = (await c.get("/api/system/health")).json()
                up = {s["service"] for s in health["services"] if s["status"] == "up"}
                return health if up >= DAEMONS else None

            health = await until(all_up, f"every daemon up: {DAEMONS}", timeout=30, every=0.1)
            handoff = (await c.get("/api/system/handoff")).json()
    assert all(s.get("lastSeen") for s in health["services"] if s["status"] == "up")
    assert health["checks"]["nats"]["status"] == "healthy"
    assert handoff["active"]["instance"].startswith("brain-") and handoff["generation"] >= 1
