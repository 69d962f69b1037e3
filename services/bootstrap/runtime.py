"""A process's live connection, its provisioned streams and its event store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from adapters.eventstore import EventStore
from adapters.nats.client import Client
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import Topology, provision
from services import heartbeat
from services.config import Settings
from services.ports.bus import Bus
from services.ports.topics import Heartbeat


@dataclass
class Runtime:
    """Live connections shared by the services of one process."""

    settings: Settings
    nc: Client
    store: EventStore


def topology(settings: Settings) -> Topology:
    return Topology(ack_wait=settings.ack_wait, replicas=settings.replicas)


@asynccontextmanager
async def runtime(settings: Settings, url: str, name: str) -> AsyncIterator[Runtime]:
    """Connect to NATS, make sure the streams exist, and build the event store."""
    nc = await Client.connect(settings.nats(url, name))
    store = JetStreamEventStore(nc)
    try:
        await provision(nc, topology(settings))
        yield Runtime(settings, nc, store)
    finally:
        await store.close()
        await nc.drain()  # closes it, whatever state it is in


def heartbeat_for(bus: Bus, service: str, every: float) -> Heartbeat:
    """Health heartbeats of a `service` on `bus`, every `every` seconds."""

    def beating(
        instance: str,
        details: Callable[[], dict[str, Any]],
        stop: asyncio.Event,
        refresh: Callable[[], Awaitable[Any]] | None = None,
    ) -> Awaitable[None]:
        return heartbeat.beat(bus, service, instance, details, stop, every, refresh)

    return beating
