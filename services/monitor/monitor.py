"""`baker monitor`: the extensions registry and the service health tracker in one daemon.

On start it subscribes (handlers wait until the state is back), folds the extension and service
aggregates from the event log, then handles messages, sweeps for silence every `sweep_every`
seconds and publishes its own heartbeat. A restart therefore neither forgets what it knew nor
marks everything offline at once: whatever was online gets the whole timeout again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.clock import SYSTEM_CLOCK
from adapters.eventstore import StoredEvent
from adapters.mcp import list_tools
from domain.events import Envelope
from services import heartbeat
from services.executor import CommandExecutor
from services.monitor import extensions as ext
from services.monitor.extensions import Discover, ExtensionRegistry
from services.monitor.health import HealthTracker
from services.ports.bus import Bus, Handler, Message, Subscription
from services.ports.clock import Clock, pause

log = logging.getLogger("baker.monitor")


@dataclass(frozen=True)
class MonitorSettings:
    heartbeat_every: float = 30.0  # the interval everyone beats at, the monitor included
    missed: int = 3  # silent for `missed` intervals: offline / down
    discovery_retries: int = 3  # MCP tools/list retries after the first attempt
    discovery_delay: float = 3.0
    sweep_every: float = 5.0  # how often silence is checked (the timeout's resolution)
    discovery_timeout: float = 5.0  # per HTTP request of a discovery

    @property
    def timeout(self) -> float:
        return self.heartbeat_every * self.missed


class Monitor:
    def __init__(
        self,
        bus: Bus,
        store: CommandExecutor,
        settings: MonitorSettings | None = None,
        instance: str | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        discover: Discover | None = None,
    ) -> None:
        """`discover` lists an extension's tools from its MCP URL (default: MCP over HTTP)."""
        self.settings = settings or MonitorSettings()
        self.instance = instance or f"monitor-{uuid.uuid4().hex[:8]}"
        self._bus = bus
        self._store = store
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        s = self.settings
        self.extensions = ExtensionRegistry(
            store, discover or self._discover, offline_after=s.timeout, missed=s.missed,
            clock=clock,
        )  # fmt: skip
        self.health = HealthTracker(store, down_after=s.timeout, missed=s.missed, clock=clock)
        self.ready = asyncio.Event()  # set once the state is restored from the log
        self.sweeps = 0

    @property
    def stats(self) -> dict[str, int]:
        """Counters: extension messages, health heartbeats, malformed input, store errors."""
        e, h = self.extensions.stats, self.health.stats
        return {
            "announces": e.announces,
            "extension_heartbeats": e.heartbeats,
            "deregisters": e.deregisters,
            "unknown_extensions": e.unknown,
            "went_offline": e.went_offline,
            "came_online": e.came_online,
            "discoveries": e.discoveries,
            "discovery_failures": e.discovery_failures,
            "health_heartbeats": h.heartbeats,
            "services_up": h.ups,
            "services_down": h.downs,
            "extension_malformed": e.malformed,
            "health_malformed": h.malformed,
            "malformed": e.malformed + h.malformed,
            "errors": e.errors + h.errors,
            "sweeps": self.sweeps,
        }

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Live health for the API: instance → `{service, status, lastSeen, version, details}`."""
        return self.health.snapshot()

    async def run(self, stop: asyncio.Event) -> None:
        """Subscribe, restore, then sweep and beat until `stop`; subscriptions are removed and
        discovery tasks stopped before it returns."""
        self._http = httpx.AsyncClient(timeout=self.settings.discovery_timeout)
        subs: list[Subscription] = []
        try:
            for subject, handler in self._routes():
                subs.append(await self._bus.subscribe(subject, self._gated(handler)))
            if not await self._restore(stop):
                return
            self.ready.set()
            await asyncio.gather(
                self._sweep(stop),
                heartbeat.beat(self._bus, "monitor", self.instance, self._details, stop,
                               self.settings.heartbeat_every, clock=self._clock),
            )  # fmt: skip
        finally:
            for sub in subs:
                with contextlib.suppress(Exception):  # a closed connection has none left
                    await sub.unsubscribe()
            await self.extensions.close()
            await self._http.aclose()

    def _routes(self) -> list[tuple[str, Handler]]:
        return [
            (ext.ANNOUNCE, self.extensions.on_announce),
            (ext.HEARTBEAT, self.extensions.on_heartbeat),
            (ext.ID_HEARTBEAT, self.extensions.on_heartbeat),
            (ext.DEREGISTER, self.extensions.on_deregister),
            (heartbeat.HEALTH_SUBJECT, self.health.on_health),
        ]

    def _gated(self, handler: Handler) -> Handler:
        # Messages that arrive while the log is read wait in the subscription's queue rather
        # than being judged against an empty registry.
        @functools.wraps(handler)
        async def gated(msg: Message) -> None:
            await self.ready.wait()
            try:
                await handler(msg)
            except Exception:  # handlers catch what they expect; this is the last guard
                log.exception("monitor handler failed on %s", msg.subject)

        return gated

    async def _restore(self, stop: asyncio.Event) -> bool:
        """Fold the extension and service events of the log, retrying until it can be read."""
        while not stop.is_set():
            extension_events: list[Envelope] = []
            service_events: list[Envelope] = []
            try:
                async for item in self._store.store.read_all(1):
                    if isinstance(item, StoredEvent):
                        env = item.envelope
                        if env.aggregate == "extension":
                            extension_events.append(env)
                        elif env.aggregate == "service":
                            service_events.append(env)
            except Exception as exc:  # the store is not there yet: wait and read again
                log.warning("cannot read the event log to restore state (%s); retrying", exc)
                await pause(self._clock, self.settings.sweep_every, stop)
                continue
            self.extensions.restore(extension_events)
            self.health.restore(service_events)
            log.info(
                "monitor %s restored %d extensions (%d online) and %d service instances",
                self.instance, len(self.extensions.known), self.extensions.online(),
                len(self.health.known),
            )  # fmt: skip
            return True
        return False

    async def _sweep(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if await pause(self._clock, self.settings.sweep_every, stop):
                return
            try:
                await self.extensions.sweep()
                await self.health.sweep()
            except Exception:  # a sweep must never end the daemon
                log.exception("monitor sweep failed")
            self.sweeps += 1

    async def _discover(self, url: str) -> list[dict[str, Any]]:
        s = self.settings
        return await list_tools(
            url,
            client=self._http,
            retries=s.discovery_retries,
            delay=s.discovery_delay,
            timeout=s.discovery_timeout,
        )

    def _details(self) -> dict[str, Any]:
        return {
            "extensionsOnline": self.extensions.online(),
            "servicesUp": self.health.up(),
            "malformed": self.stats["malformed"],
            "errors": self.stats["errors"],
        }
