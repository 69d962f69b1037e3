"""The extensions registry: announce / heartbeat / deregister messages become extension events.

Only state changes are recorded (DESIGN §5: online ↔ offline → deregistered). Liveness lives in
memory: every announce or heartbeat refreshes the extension's last-seen time, and the sweeper
marks it offline once nothing came for the whole offline timeout. Tools are discovered over MCP
in background tasks, so a slow or dead extension never holds up message handling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.clock import SYSTEM_CLOCK
from domain import commands as c
from domain import lifecycle
from domain import wire_system as wire
from domain.events import Envelope
from services.executor import CommandExecutor, Outcome
from services.ports.bus import Message
from services.ports.clock import Clock

log = logging.getLogger("baker.monitor.extensions")
ANNOUNCE = "baker.extensions.announce"
HEARTBEAT = "baker.extensions.heartbeat"
ID_HEARTBEAT = "baker.extensions.*.heartbeat"  # upstream's per-extension subject
DEREGISTER = "baker.extensions.deregister"
Discover = Callable[[str], Awaitable[list[dict[str, Any]]]]


@dataclass
class ExtensionStats:
    announces: int = 0
    heartbeats: int = 0
    deregisters: int = 0
    malformed: int = 0
    unknown: int = 0  # heartbeats or deregisters of extensions never announced
    errors: int = 0  # the event store failed while handling a message
    went_offline: int = 0
    came_online: int = 0
    discoveries: int = 0
    discovery_failures: int = 0


@dataclass
class Tracked:
    status: str  # online | offline | deregistered
    seen: float  # the clock's `now()` at the last announce or heartbeat
    seen_at: datetime | None  # the same on the wall clock; None if not seen since start
    mcp_url: str
    tool_names: frozenset[str]
    discovered: bool  # tools/list answered for the current URL (or tools were on record)


class ExtensionRegistry:
    def __init__(
        self,
        store: CommandExecutor,
        discover: Discover,
        *,
        offline_after: float,
        missed: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._clock = clock
        self._discover = discover
        self.offline_after = offline_after
        self.missed = missed
        self.known: dict[str, Tracked] = {}
        self.stats = ExtensionStats()
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def restore(self, envelopes: Iterable[Envelope]) -> None:
        """Fold the extension events of the log. Every extension that was online gets a fresh
        grace period of the whole offline timeout: the monitor was not listening meanwhile."""
        states: dict[str, Any] = {}
        for env in envelopes:
            state = states.get(env.aggregate_id) or lifecycle.initial_state("extension")
            try:
                states[env.aggregate_id] = lifecycle.evolve("extension", state, env.data)
            except TypeError as exc:  # a foreign event on an extension subject: skip it
                log.error("skipped %s on extension %s: %s", env.type, env.aggregate_id, exc)
        now = self._clock.now()
        for ext_id, s in states.items():
            if s.status != "new":
                names = _names(s.tools)
                self.known[ext_id] = Tracked(s.status, now, None, s.mcp_url, names, bool(s.tools))

    def online(self) -> int:
        return sum(1 for t in self.known.values() if t.status == "online")

    # --- messages -------------------------------------------------------------------------

    async def on_announce(self, msg: Message) -> None:
        try:
            m = wire.decode_announce(msg.data)
        except wire.WireError as exc:
            self._malformed(msg, exc)
            return
        self.stats.announces += 1
        async with self._lock(m.id):
            tracked = self._touch(m.id)
            # Discovery is authoritative for tool definitions: announced tools count as a
            # change only when their names differ, or every keepalive would re-announce.
            same = tracked is not None and _names(m.tools or ()) == tracked.tool_names
            tools = None if m.tools is None or same else tuple(m.tools)
            cmd = c.AnnounceExtension(
                name=m.name, version=m.version, mcp_url=m.mcp_url, description=m.description,
                tools=tools,
            )  # fmt: skip
            outcome = await self._execute(msg.subject, m.id, cmd)
            if outcome is None:
                return
            tracked = self._track(m.id, outcome)
            if _appended(outcome, "ExtensionAnnounced", "ExtensionCameOnline"):
                tracked.discovered = False
                self._start_discovery(m.id, tracked.mcp_url, restart=True)
            elif not tracked.discovered:  # upstream: a re-announce retries a failed discovery
                self._start_discovery(m.id, tracked.mcp_url, restart=False)

    async def on_heartbeat(self, msg: Message) -> None:
        parts = msg.subject.split(".")
        subject_id = parts[2] if len(parts) == 4 else None
        try:
            m = wire.decode_extension_heartbeat(msg.data, subject_id)
        except wire.WireError as exc:
            self._malformed(msg, exc)
            return
        self.stats.heartbeats += 1
        async with self._lock(m.id):
            tracked = self._touch(m.id)
            if tracked is None or tracked.status == "deregistered":
                # Nothing to bring online without an announce (no name, no URL); upstream
                # extensions re-announce soon anyway.
                self.stats.unknown += 1
                log.info("heartbeat of unknown extension %s on %s", m.id, msg.subject)
                return
            if tracked.status == "online":
                return  # the common case: a heartbeat changes nothing worth an event
            outcome = await self._execute(msg.subject, m.id, c.RecordHeartbeat())
            if outcome is not None:
                tracked = self._track(m.id, outcome)
                if _appended(outcome, "ExtensionCameOnline"):
                    self._start_discovery(m.id, tracked.mcp_url, restart=True)

    async def on_deregister(self, msg: Message) -> None:
        try:
            m = wire.decode_deregister(msg.data)
        except wire.WireError as exc:
            self._malformed(msg, exc)
            return
        self.stats.deregisters += 1
        async with self._lock(m.id):
            tracked = self.known.get(m.id)
            if tracked is None or tracked.status == "deregistered":
                self.stats.unknown += tracked is None
                return
            self._cancel_discovery(m.id)
            outcome = await self._execute(msg.subject, m.id, c.DeregisterExtension(m.reason))
            if outcome is not None:
                self._track(m.id, outcome)

    # --- the sweeper and discovery --------------------------------------------------------

    async def sweep(self) -> None:
        """Mark offline every online extension silent for longer than the offline timeout."""
        for ext_id, tracked in list(self.known.items()):
            if tracked.status != "online" or not self._silent(tracked):
                continue
            async with self._lock(ext_id):
                if tracked.status != "online" or not self._silent(tracked):
                    continue  # a heartbeat came while we waited for the lock
                cmd = c.MarkExtensionOffline(
                    last_seen=tracked.seen_at, missed_heartbeats=self.missed
                )
                outcome = await self._execute("sweeper", ext_id, cmd)
                if outcome is not None:
                    self._track(ext_id, outcome)
                    log.warning("extension %s went offline: no heartbeat", ext_id)

    async def close(self) -> None:
        """Stop the discovery tasks still running."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start_discovery(self, ext_id: str, url: str, *, restart: bool) -> None:
        running = self._tasks.get(ext_id)
        if running is not None and not running.done():
            if not restart:
                return
            running.cancel()  # it is not inside the lock: the caller holds it
        task = asyncio.create_task(self._discover_tools(ext_id, url), name=f"discover-{ext_id}")
        self._tasks[ext_id] = task
        task.add_done_callback(lambda t: self._forget_task(ext_id, t))

    def _forget_task(self, ext_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(ext_id) is task:
            del self._tasks[ext_id]

    def _cancel_discovery(self, ext_id: str) -> None:
        task = self._tasks.pop(ext_id, None)
        if task is not None:
            task.cancel()

    async def _discover_tools(self, ext_id: str, url: str) -> None:
        try:
            tools = await self._discover(url)
        except Exception as exc:  # any failure: log it, the extension stays online
            self.stats.discovery_failures += 1
            log.warning("tool discovery for extension %s at %s failed: %s", ext_id, url, exc)
            return
        async with self._lock(ext_id):
            tracked = self.known.get(ext_id)
            if tracked is None or tracked.status == "deregistered" or tracked.mcp_url != url:
                return  # what we asked no longer matters
            outcome = await self._execute("discovery", ext_id, c.RecordTools(tuple(tools)))
            if outcome is not None:
                self._track(ext_id, outcome).discovered = True
                self.stats.discoveries += 1

    # --- helpers --------------------------------------------------------------------------

    def _lock(self, ext_id: str) -> asyncio.Lock:
        # One lock per extension orders the handlers, the sweeper and discovery on it.
        return self._locks.setdefault(ext_id, asyncio.Lock())

    def _silent(self, tracked: Tracked) -> bool:
        return self._clock.now() - tracked.seen > self.offline_after

    def _touch(self, ext_id: str) -> Tracked | None:
        tracked = self.known.get(ext_id)
        if tracked is not None:
            tracked.seen, tracked.seen_at = self._clock.now(), self._clock.wall()
        return tracked

    def _track(self, ext_id: str, outcome: Outcome) -> Tracked:
        state = outcome.state
        tracked = self.known.get(ext_id)
        if tracked is None:
            now, wall = self._clock.now(), self._clock.wall()
            tracked = Tracked("new", now, wall, "", frozenset(), False)
            self.known[ext_id] = tracked
        if tracked.status == "offline" and state.status == "online":
            self.stats.came_online += 1
        elif tracked.status == "online" and state.status == "offline":
            self.stats.went_offline += 1
        tracked.status, tracked.mcp_url = state.status, state.mcp_url
        tracked.tool_names = _names(state.tools)
        return tracked

    async def _execute(self, source: str, ext_id: str, cmd: c.Command) -> Outcome | None:
        try:
            outcome = await self._store.execute("extension", ext_id, cmd)
        except Exception:  # the store is down or refused: log, count, keep the loop alive
            self.stats.errors += 1
            log.exception(
                "could not record %s for extension %s (%s)", cmd.type_name, ext_id, source
            )
            return None
        if outcome.rejected is not None:
            log.info(
                "extension %s: %s rejected: %s", ext_id, cmd.type_name, outcome.rejected.reason
            )
        return outcome

    def _malformed(self, msg: Message, exc: wire.WireError) -> None:
        self.stats.malformed += 1
        log.warning("malformed message on %s: %s", msg.subject, exc, extra={"subject": msg.subject})


def _names(tools: Iterable[dict[str, Any]]) -> frozenset[str]:
    return frozenset(str(t.get("name", "")) for t in tools)


def _appended(outcome: Outcome, *types: str) -> bool:
    return any(item.envelope.type in types for item in outcome.appended)
