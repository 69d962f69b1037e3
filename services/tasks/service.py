"""Task pods on the Brain's side: launch, ingest of the runners' messages, deadlines.

`launch` validates a request, asks a launcher on `baker.tasks.launch` (core request/reply) and
records `TaskLaunched` with the launcher that answered; no answer or a refusal ends the task
`failed`. `run` ingests the `brain-tasks` pull consumer like the job ingest (stream sequences
as causation ids, malformed messages terminated and counted) and runs a deadline watchdog that
times out any task past its deadline, even one whose runner never said a word. `cancel`
records `TaskCancelled` and tells the launcher running the task to stop it (the local runner's
process tree is killed, the Kubernetes Job deleted); whatever the runner says after that is a
recorded rejection.

Appends go through the event store's fence: on a Brain that does not lead they raise
`services.brain.leadership.Fenced` before anything is stored.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from adapters import tracing
from adapters.clock import SYSTEM_CLOCK
from adapters.eventstore import StoredEvent, StoreUnavailable
from domain import lifecycle
from domain.commands import LaunchTask, RecordTaskStatus, TimeOutTask
from domain.errors import FieldError
from domain.events import TaskLaunched
from domain.tasks import (
    LAUNCH_SUBJECT,
    LaunchReply,
    LaunchRequest,
    TaskResultMessage,
    TaskStatusMessage,
    decode,
    parse_task_request,
    record_command,
)
from domain.wire import WireError
from services.executor import CommandExecutor
from services.ports.bus import Bus, BusClosed, NoResponders
from services.ports.clock import Clock, pause, within
from services.ports.jobs import Delivery, DeliverySource
from services.serial import KeyedSerial
from services.tasks.control import cancel_task

log = logging.getLogger("baker.tasks")
POISON_AFTER = 5  # deliveries of a message our own code keeps failing on
UNKNOWN_AFTER = 10  # deliveries of a message for a task the log does not know


@dataclass
class TaskStats:
    launched: int = 0
    launch_failed: int = 0
    processed: int = 0
    malformed: int = 0
    rejected: int = 0
    unknown: int = 0
    errors: int = 0
    timed_out: int = 0
    cancelled: int = 0
    watching: int = 0
    checks: int = 0  # rounds of the deadline watchdog


class TaskService:
    """`bus` reaches the launchers, `inbox` delivers the runners' messages (consumer
    `brain-tasks`); deadlines are read and waited for on `clock`."""

    def __init__(
        self,
        bus: Bus,
        store: CommandExecutor,
        inbox: DeliverySource,
        *,
        launch_timeout: float = 5.0,
        check_every: float = 1.0,
        batch: int = 64,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._bus = bus
        self._store = store
        self._inbox = inbox
        self._clock = clock
        self.launch_timeout = launch_timeout
        self.check_every = check_every
        self._batch = batch
        self._serial = KeyedSerial()
        self._deadlines: dict[str, tuple[datetime, int]] = {}
        self._launching: dict[str, asyncio.Event] = {}
        self._tracer = tracing.tracer("baker.tasks")
        self.stats = TaskStats()

    # --- launch -------------------------------------------------------------------------

    async def launch(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """`POST /api/tasks`: (HTTP status, JSON answer)."""
        try:
            request = parse_task_request(body)
        except FieldError as exc:
            return 400, {"error": str(exc)}
        task_id = f"task-{secrets.token_hex(8)}"
        deadline = self._clock.wall() + timedelta(seconds=request.timeout_seconds)
        gate = self._launching[task_id] = asyncio.Event()
        try:
            with tracing.span(self._tracer, "task.launch", attributes={"task.id": task_id}):
                headers: dict[str, str] = {}
                tracing.inject(headers)
                launch = LaunchRequest(
                    task_id=task_id,
                    goal=request.goal,
                    mode=request.mode,
                    toolbox=request.toolbox,
                    timeout_seconds=request.timeout_seconds,
                    deadline_at=deadline,
                    traceparent=headers.get("traceparent"),
                )
                reply, refusal = await self._ask_launcher(launch, headers)
                return await self._record_launch(launch, reply, refusal, tracing.trace_id_of())
        except StoreUnavailable as exc:
            log.error("task %s: event store unavailable at launch: %s", task_id, exc)
            return 503, {"error": f"event store unavailable: {exc}", "id": task_id}
        finally:
            gate.set()
            self._launching.pop(task_id, None)

    async def _ask_launcher(
        self, launch: LaunchRequest, headers: dict[str, str]
    ) -> tuple[LaunchReply | None, str | None]:
        """The launcher's reply, and the reason the task cannot run (None when it can).

        "No responders" is retried for up to a second (nobody got the request, so it is safe):
        a launcher that is just starting, or the server's interest lagging its SUB.
        """
        retry_until = self._clock.now() + min(1.0, self.launch_timeout / 2)
        try:
            while True:
                try:
                    msg = await self._bus.request(
                        LAUNCH_SUBJECT,
                        launch.encode(),
                        timeout=self.launch_timeout,
                        headers=headers,
                    )
                    break
                except NoResponders:
                    if self._clock.now() >= retry_until:
                        raise
                    await self._clock.sleep(0.1)
        except NoResponders:
            return None, f"no task launcher is running (nobody listens on {LAUNCH_SUBJECT})"
        except TimeoutError:
            return None, f"no task launcher answered within {self.launch_timeout:g}s"
        except BusClosed:
            return None, "NATS connection closed: could not ask a task launcher"
        try:
            reply = decode(LaunchReply, msg.data)
        except WireError as exc:
            return None, f"the task launcher's answer was unreadable ({exc})"
        if not reply.ok:
            return reply, f"launcher {reply.launcher} refused: {reply.error or 'no reason given'}"
        return reply, None

    async def _record_launch(
        self,
        launch: LaunchRequest,
        reply: LaunchReply | None,
        refusal: str | None,
        trace_id: str | None,
    ) -> tuple[int, dict[str, Any]]:
        task_id = launch.task_id
        command = LaunchTask(
            goal=launch.goal,
            mode=launch.mode,
            timeout_seconds=launch.timeout_seconds,
            toolbox=launch.toolbox,
            launcher=reply.launcher if reply is not None else "none",
            deadline_at=launch.deadline_at,
        )
        await self._store.execute("task", task_id, command, trace_id=trace_id, new=True)
        if refusal is not None:
            failed = RecordTaskStatus(status="failed", error=refusal)
            await self._store.execute("task", task_id, failed, trace_id=trace_id)
            self.stats.launch_failed += 1
            log.warning("task %s failed to launch: %s", task_id, refusal)
            return 503, {"error": refusal, "id": task_id}
        self._deadlines[task_id] = (launch.deadline_at, launch.timeout_seconds)
        self.stats.launched += 1
        self.stats.watching = len(self._deadlines)
        return 202, {"id": task_id, "status": "launched"}

    # --- cancel -------------------------------------------------------------------------

    async def cancel(self, task_id: str, reason: str | None = None) -> tuple[int, dict[str, Any]]:
        """`POST /api/tasks/{id}/cancel`: (HTTP status, JSON answer); see `cancel_task`."""
        status, doc = await cancel_task(
            self._bus, self._store, task_id, reason, stop_within=min(self.launch_timeout, 2.0)
        )
        if status == 202:
            self.stats.cancelled += 1
            self._forget(task_id)
        return status, doc

    # --- ingest and watchdog ------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Ingest runner messages and time out overdue tasks until `stop` is set."""
        inbox = self._inbox
        watchdog = asyncio.create_task(self._watch(stop), name="baker-task-deadlines")
        try:
            while not stop.is_set():
                for msg in await inbox.fetch(self._batch, wait=0.5):
                    self._serial.submit(msg.subject.rsplit(".", 1)[-1], partial(self.handle, msg))
        finally:
            await self._serial.drain()
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
            await inbox.close()

    async def handle(self, msg: Delivery) -> None:
        """Decide one status/result message and acknowledge it."""
        parts = msg.subject.split(".")
        if len(parts) != 4 or parts[2] not in ("status", "result"):
            await self._malformed(msg, f"subject {msg.subject} is not a status or result subject")
            return
        kind, task_id = parts[2], parts[3]
        wire: TaskStatusMessage | TaskResultMessage
        try:
            if kind == "status":
                wire = decode(TaskStatusMessage, msg.data)
            else:
                wire = decode(TaskResultMessage, msg.data)
        except WireError as exc:
            await self._malformed(msg, str(exc))
            return
        if wire.task_id != task_id:
            await self._malformed(msg, f"taskId {wire.task_id!r} does not match the subject")
            return
        gate = self._launching.get(task_id)
        if gate is not None:  # the runner spoke before its TaskLaunched was appended
            waiting = asyncio.ensure_future(gate.wait())
            if not await within(self._clock, self.launch_timeout + 5.0, waiting):
                waiting.cancel()
        await self._apply(msg, task_id, record_command(wire))

    async def _apply(self, msg: Delivery, task_id: str, command: RecordTaskStatus) -> None:
        seq = msg.seq
        trace_id = tracing.trace_id_from_headers(msg.headers)
        try:
            outcome = await self._store.execute(
                "task", task_id, command, trace_id=trace_id, causation_id=f"tasks-{seq}"
            )
        except StoreUnavailable:
            msg.nak(delay=2)
            return
        except Exception:
            self.stats.errors += 1
            log.exception("task ingest failed on %s", msg.subject, extra={"task_id": task_id})
            msg.term() if msg.delivered >= POISON_AFTER else msg.nak(delay=1)
            return
        if outcome.rejected is not None and outcome.position.version == 0:
            await self._unknown(msg, task_id)
            return
        self.stats.processed += 1
        if outcome.rejected is not None:
            self.stats.rejected += 1
        if outcome.state.terminal:
            self._forget(task_id)
        msg.ack()

    async def _unknown(self, msg: Delivery, task_id: str) -> None:
        if msg.delivered < UNKNOWN_AFTER:
            msg.nak(delay=0.5)  # its TaskLaunched may still be on its way
            return
        self.stats.unknown += 1
        log.error("message on %s for unknown task %s: dropped", msg.subject, task_id)
        msg.term()

    async def _malformed(self, msg: Delivery, reason: str) -> None:
        self.stats.malformed += 1
        log.error("malformed task message on %s: %s", msg.subject, reason)
        msg.term()

    def _forget(self, task_id: str) -> None:
        self._deadlines.pop(task_id, None)
        self.stats.watching = len(self._deadlines)

    async def _watch(self, stop: asyncio.Event) -> None:
        try:
            count = await self.restore()
            log.info("watching %d unfinished tasks", count)
        except StoreUnavailable as exc:
            log.error("could not restore unfinished tasks: %s", exc)
        # A fixed schedule: a round that comes late (a busy loop, a clock moved on meanwhile)
        # runs at once, and the schedule goes on from then.
        next_round = self._clock.now()
        while not stop.is_set():
            await self.check()
            self.stats.checks += 1
            now = self._clock.now()
            next_round = max(next_round + self.check_every, now)
            await pause(self._clock, next_round - now, stop)

    async def restore(self) -> int:
        """Watch the deadlines of every unfinished task in the event log."""
        found: dict[str, tuple[Any, datetime, int]] = {}
        async for item in self._store.store.read_all(1):
            if not isinstance(item, StoredEvent) or item.envelope.aggregate != "task":
                continue
            env, event = item.envelope, item.envelope.data
            state, deadline, timeout = found.get(
                env.aggregate_id, (lifecycle.initial_state("task"), env.occurred_at, 0)
            )
            if isinstance(event, TaskLaunched):
                timeout = event.timeout_seconds
                deadline = event.deadline_at or env.occurred_at + timedelta(seconds=timeout)
            found[env.aggregate_id] = (lifecycle.evolve("task", state, event), deadline, timeout)
        for task_id, (state, deadline, timeout) in found.items():
            if not state.terminal and timeout:
                self._deadlines.setdefault(task_id, (deadline, timeout))
        self.stats.watching = len(self._deadlines)
        return len(self._deadlines)

    async def check(self) -> None:
        """Time out every watched task past its deadline (runner silent or not)."""
        now = self._clock.wall()
        for task_id, (deadline, timeout) in list(self._deadlines.items()):
            if deadline > now:
                continue
            try:
                state, _ = await self._store.current("task", task_id)
                if not state.terminal:
                    outcome = await self._store.execute(
                        "task",
                        task_id,
                        TimeOutTask(timeout_seconds=timeout),
                        causation_id=f"deadline-{task_id}",
                    )
                    if outcome.changed:
                        self.stats.timed_out += 1
                        log.warning("task %s timed out after %ds", task_id, timeout)
            except StoreUnavailable:
                continue  # next round
            self._forget(task_id)
