"""A Brain's role over time: pending → active → draining → shutdown (blue-green handoff).

An active Brain that receives `ready` from a pending one records the handoff, drains (no new
dispatches, ingest and watchdogs stopped after finishing what is in flight), sends `clear`
and waits for `ack`: the new Brain takes the next fencing generation and answers `ack`. If no
`ack` comes and the generation did not move, the old Brain aborts and resumes; if the new
Brain took the generation but never answers (not even a second `clear`), the old one takes a
newer generation and resumes, so a new Brain dying mid-handoff never leaves nobody leading. A
pending Brain
that is told `abort` stays pending and asks again; one that gets no `clear` within its timeout
becomes active on its own (a fresh start); the old one, if alive, sees the newer generation and
stops. A Brain that stops (signal, fenced, handed over) refuses requests at once (`draining`)
while its in-flight work finishes. Every step is an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from domain import commands as c
from domain.handoff import HandoffMessage, Leader, decode_handoff
from domain.wire import WireError
from services.api.context import BrainStatus
from services.brain.brain import Brain
from services.brain.leadership import Leadership
from services.executor import CommandExecutor
from services.ports.topics import Topic

log = logging.getLogger("baker.brain.handoff")


@dataclass(frozen=True)
class HandoffSettings:
    pending_timeout: float = 120.0
    drain_cap: float = 60.0
    ack_timeout: float = 30.0
    ready_every: float = 5.0


class Controller:
    def __init__(
        self,
        handoff: Topic,
        executor: CommandExecutor,
        brain: Brain,
        status: BrainStatus,
        leadership: Leadership,
        settings: HandoffSettings | None = None,
        *,
        stale_handoffs: Callable[[], Awaitable[list[str]]] | None = None,
    ) -> None:
        self._handoff = handoff  # `baker.system.handoff`
        self._executor = executor  # fenced by `leadership`, which also gives its generation
        self.brain = brain
        self.status = status
        self.leadership = leadership
        self.settings = settings or HandoffSettings()
        self._stale_handoffs = stale_handoffs
        self._inbox: asyncio.Queue[HandoffMessage] = asyncio.Queue()
        self._lost = asyncio.Event()
        self._work: asyncio.Task[None] | None = None
        self._work_stop = asyncio.Event()
        self.malformed = 0
        self.aborts = 0  # `abort` messages received while pending

    @property
    def me(self) -> str:
        return self.leadership.instance

    async def run(self, role: Literal["active", "pending"], stop: asyncio.Event) -> None:
        """Play the role until `stop`, a completed handoff, or being fenced."""
        sub = await self._handoff.subscribe(self._receive)
        await self.leadership.watch(self._fenced)
        try:
            await self._record(
                "brain", self.me, c.StartBrain(role=role, version=self.status.version)
            )
            self._set("pending")
            if role == "pending":
                await self._join(stop)
            else:
                await self._activate(fresh=True)
            await self._serve(stop)
            if self.status.state != "shutdown":  # stopped while still pending
                await self._shut_down("stopped")
        finally:
            await self._stop_work()
            await sub.unsubscribe()
            await self.leadership.close()

    # --- active --------------------------------------------------------------------------

    async def _serve(self, stop: asyncio.Event) -> None:
        while self.status.state == "active":
            msg = await self._next(stop)
            if msg is None:  # stopped or fenced
                reason = "fenced by a newer generation" if self._lost.is_set() else "stopped"
                await self._shut_down(reason)
                return
            if msg.type == "ready" and msg.from_instance != self.me:
                await self._hand_over(msg)
            elif (
                msg.type == "clear"
                and msg.to_instance == self.me
                and msg.generation == self.leadership.mine
            ):  # the old Brain asks again (our ack was lost): say it again
                await self._send(
                    "ack", to=msg.from_instance, handoff_id=msg.handoff_id,
                    generation=self.leadership.mine,
                )  # fmt: skip

    async def _next(self, stop: asyncio.Event) -> HandoffMessage | None:
        get = asyncio.ensure_future(self._inbox.get())
        ends = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._lost.wait())]
        done, pending = await asyncio.wait([get, *ends], return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        return get.result() if get in done else None

    async def _hand_over(self, ready: HandoffMessage) -> None:
        handoff = f"handoff-{uuid.uuid4().hex[:12]}"
        assert self.leadership.mine is not None
        generation = self.leadership.mine + 1
        log.info("handing over to %s (generation %d)", ready.from_instance, generation)
        try:
            await self._record("handoff", handoff, c.RequestHandoff(
                to_instance=ready.from_instance, to_version=ready.version,
                generation=generation, from_instance=self.me,
            ))  # fmt: skip
            await self._record("brain", self.me, c.DrainBrain(handoff_id=handoff))
            self._set("draining")
            await self._record(
                "handoff",
                handoff,
                c.StartHandoffDrain(from_instance=self.me, from_version=self.status.version),
            )
            await self._drain()
            await self._send(
                "clear", to=ready.from_instance, generation=generation, handoff_id=handoff
            )
            answer = await self._acknowledged(handoff, ready.from_instance, generation)
            if answer == "silent":  # it took the generation but said nothing: ask once more
                await self._send(
                    "clear", to=ready.from_instance, generation=generation, handoff_id=handoff
                )
                answer = await self._acknowledged(handoff, ready.from_instance, generation)
            if answer == "ack":
                await self._record("handoff", handoff, c.CompleteHandoff(generation=generation))
                await self._shut_down(f"handed over to {ready.from_instance}")
                return
            if answer == "silent":
                await self._take_back(handoff, ready.from_instance, generation)
                return
            await self._abort(
                handoff, ready.from_instance, "no ack in time and the generation did not move"
            )
        except Exception as exc:
            log.exception("handoff failed")
            await self._abort(handoff, ready.from_instance, f"handoff failed: {exc}")

    async def _drain(self) -> None:
        """Stop taking work, finish what is in flight (bounded by the drain cap)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.drain_cap
        await self._stop_work(deadline - loop.time())
        while self.status.inflight > 0 and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # polling the API's in-flight request counter

    async def _acknowledged(
        self, handoff: str, to: str, generation: int
    ) -> Literal["ack", "none", "silent"]:
        """`ack`; `none` (refused, or no answer and the generation did not move); or `silent`:
        no answer, but the record says the new Brain took the generation (its ack was lost,
        or it died right after taking it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ack_timeout
        while (left := deadline - loop.time()) > 0:
            try:
                msg = await asyncio.wait_for(self._inbox.get(), left)
            except TimeoutError:
                break
            if msg.type == "ack" and msg.handoff_id == handoff and msg.from_instance == to:
                return "ack"
            if msg.type == "abort" and msg.handoff_id == handoff:
                return "none"
        current = await self.leadership.refresh()
        if current is not None and current.instance == to and current.generation >= generation:
            return "silent"
        return "none"

    async def _take_back(self, handoff: str, to: str, generation: int) -> None:
        """The new Brain took the generation and then went silent (it died, most likely):
        lead again with a newer one, so that nobody is left leading nothing. If it is alive
        after all, it sees the newer generation and stops."""
        reason = f"{to} took generation {generation} but never answered"
        try:
            taken = await self.leadership.take()
        except Exception as exc:  # another Brain moved the record first: it leads
            await self._shut_down(f"{reason}; could not take over again: {exc}")
            return
        await self._record("handoff", handoff, c.AbortHandoff(reason=reason))
        await self._record("brain", self.me, c.ResumeBrain(handoff_id=handoff, reason=reason))
        log.warning("%s: leading again with generation %d", reason, taken.generation)
        self._set("active")
        self._start_work()

    async def _abort(self, handoff: str, to: str, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self._send("abort", to=to, handoff_id=handoff, reason=reason)
        await self._record("handoff", handoff, c.AbortHandoff(reason=reason))
        current = await self.leadership.refresh()
        if self.leadership.leading:
            await self._record("brain", self.me, c.ResumeBrain(handoff_id=handoff, reason=reason))
            self._set("active")
            self._start_work()
        else:
            holder = current.instance if current else "nobody"
            await self._shut_down(f"handoff aborted but {holder} now leads")

    # --- pending -------------------------------------------------------------------------

    async def _join(self, stop: asyncio.Event) -> None:
        """Ask the active Brain to hand over; activate on `clear`, or alone after the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.pending_timeout
        next_ready = loop.time()
        clear: HandoffMessage | None = None
        while clear is None and not stop.is_set() and (left := deadline - loop.time()) > 0:
            if loop.time() >= next_ready:  # again and again: the active one may have missed it
                await self._send("ready")
                next_ready = loop.time() + self.settings.ready_every
            try:
                msg = await asyncio.wait_for(
                    self._inbox.get(), min(left, max(next_ready - loop.time(), 0.01))
                )
            except TimeoutError:
                continue
            if msg.to_instance == self.me and msg.type == "clear":
                clear = msg
            elif msg.to_instance == self.me and msg.type == "abort":
                # The active Brain resumed: taking over now would only fence it. Ask again
                # later; the pending timeout still bounds the wait.
                self.aborts += 1
                log.warning("handoff aborted by %s: %s", msg.from_instance, msg.reason)
                next_ready = loop.time() + self.settings.ready_every
        if stop.is_set():
            return
        await self._activate(fresh=clear is None)
        if clear is not None:
            await self._send(
                "ack",
                to=clear.from_instance,
                handoff_id=clear.handoff_id,
                generation=self.leadership.mine or 0,
            )

    async def _activate(self, *, fresh: bool) -> None:
        taken = await self.leadership.take()
        await self._record(
            "brain", self.me, c.ActivateBrain(generation=taken.generation, fresh_start=fresh)
        )
        self._set("active")
        if fresh and self._stale_handoffs is not None:
            for handoff in await self._stale_handoffs():
                with contextlib.suppress(Exception):
                    await self._record(
                        "handoff", handoff, c.AbortHandoff(reason=f"{self.me} started fresh")
                    )
        self._start_work()

    # --- plumbing ------------------------------------------------------------------------

    def _start_work(self) -> None:
        self._work_stop = asyncio.Event()
        self._work = asyncio.create_task(self.brain.run_work(self._work_stop), name="brain-work")

    async def _stop_work(self, within: float | None = None) -> None:
        self._work_stop.set()
        if self._work is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._work), within)
            self._work = None

    async def _shut_down(self, reason: str) -> None:
        """Refuse requests at once, let in-flight work finish (at most the drain cap), stop."""
        if self.status.state != "shutdown":
            self._set("draining")  # the API answers 503 from here on, before any waiting
        await self._stop_work(self.settings.drain_cap)
        with contextlib.suppress(Exception):
            await self._record("brain", self.me, c.ShutDownBrain(reason=reason))
        self._set("shutdown")
        log.info("brain %s shut down: %s", self.me, reason)

    async def _fenced(self, leader: Leader) -> None:
        if self.status.state == "active":
            self._lost.set()

    def _set(self, state: str) -> None:
        self.status.state = state

    async def _record(self, aggregate: str, agg_id: str, cmd: Any) -> None:
        await self._executor.execute(aggregate, agg_id, cmd)

    async def _send(self, kind: str, *, to: str | None = None, **fields: Any) -> None:
        msg = HandoffMessage(
            type=kind, from_instance=self.me, to_instance=to, version=self.status.version,
            timestamp=datetime.now(UTC), **fields,
        )  # fmt: skip
        await self._handoff.publish(msg.encode())

    async def _receive(self, data: bytes) -> None:
        try:
            parsed = decode_handoff(data)
        except WireError as exc:
            self.malformed += 1
            log.error("malformed handoff message: %s", exc)
            return
        if parsed.from_instance != self.me:
            self._inbox.put_nowait(parsed)
