"""After a real handoff between two `baker brain` processes, `GET /api/system/handoff` and
`baker handoff [--json]` show the new active Brain, its generation and the completed handoff."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from tests.e2e.procs import BakerProcess
from tests.e2e.test_handoff import Brain, Cluster, until_state


@pytest.fixture
def brains(
    nats_server: NatsServerProcess, provisioned: Client, tmp_path: Path
) -> Iterator[Cluster]:
    c = Cluster(nats_server, tmp_path)  # no workers: no jobs run in this test
    yield c
    for brain in c.brains:
        if brain.proc.proc.poll() is None:
            brain.proc.stop(9)


async def handoff_view(brain: Brain, done: str) -> dict[str, Any]:
    """The view once the read model shows `done` completed (polled with a deadline)."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=brain.url, timeout=5) as c:
        while True:
            doc: dict[str, Any] = (await c.get("/api/system/handoff")).json()
            if any(h["id"] == done and h["status"] == "completed" for h in doc["history"]):
                return doc
            assert time.monotonic() < deadline, doc
            await asyncio.sleep(0.05)  # polling the read model


def cli(brain: Brain, *args: str) -> tuple[int, list[str]]:
    proc = BakerProcess(
        "handoff", *args, env={"BAKER_API_URL": brain.url, "BAKER_LOG_LEVEL": "WARNING"}
    )
    code = proc.wait(30)
    return code, proc.lines


async def test_the_handoff_view_after_a_real_handoff(brains: Cluster, provisioned: Client) -> None:
    blue = brains.brain("blue")
    await until_state(blue, {"active"})
    green = brains.brain("green", role="pending")
    assert blue.proc.wait(60) == 0  # handed over and exited
    await until_state(green, {"active"})

    store = JetStreamEventStore(provisioned)
    blue_events = (await store.load("brain", blue.instance)).events
    green_events = (await store.load("brain", green.instance)).events
    await store.close()
    handoff_id = next(
        e.envelope.data.handoff_id for e in blue_events if e.envelope.type == "BrainDrainStarted"
    )
    generation = green_events[-1].envelope.data.generation
    assert generation == blue_events[1].envelope.data.generation + 1

    doc = await handoff_view(green, handoff_id)
    assert doc["active"]["instance"] == green.instance and doc["generation"] == generation
    assert doc["inProgress"] is None
    done = next(h for h in doc["history"] if h["id"] == handoff_id)
    assert (done["fromInstance"], done["toInstance"]) == (blue.instance, green.instance)
    assert done["generation"] == generation
    states = {b["instance"]: b["status"] for b in doc["brains"]}
    assert states == {blue.instance: "shutdown", green.instance: "active"}

    code, lines = cli(green, "--json")
    assert code == 0, lines
    exported = json.loads("\n".join(lines))
    assert exported["active"]["instance"] == green.instance
    assert exported["generation"] == generation
    assert any(h["id"] == handoff_id and h["status"] == "completed" for h in exported["history"])

    code, lines = cli(green)
    assert code == 0, lines
    assert f"active brain: {green.instance}  generation: {generation}" in lines
    row = next(line for line in lines if handoff_id in line)
    assert "completed" in row and blue.instance in row and green.instance in row
