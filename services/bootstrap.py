"""The one place that wires adapters into services (the composition root)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from nats.aio.client import Client as NATS

from adapters.eventstore import EventStore
from adapters.nats.connection import connect
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import Topology, provision
from services.config import Settings


@dataclass
class Runtime:
    """Live connections shared by the services of one process."""

    settings: Settings
    nc: NATS
    store: EventStore


def topology(settings: Settings) -> Topology:
    return Topology(ack_wait=settings.ack_wait)


@asynccontextmanager
async def runtime(settings: Settings, url: str, name: str) -> AsyncIterator[Runtime]:
    """Connect to NATS, make sure the streams exist, and build the event store."""
    nc = await connect(settings.nats(url, name))
    store = JetStreamEventStore(nc)
    try:
        await provision(nc.jsm(), topology(settings))
        yield Runtime(settings, nc, store)
    finally:
        await store.close()
        try:
            await nc.drain()
        except Exception:  # reconnecting or already gone: just close
            await nc.close()
