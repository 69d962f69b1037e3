"""Ingest: worker status and result messages become job events.

One durable consumer, `brain-ingest`, filtered on the status, result and step subjects, so a
job's messages arrive in the order its worker published them (the `ReportSource` port). They
are handled in order per job and concurrently across jobs: a fetched batch goes in rounds of
at most one message per job, whose appends are pipelined (`CommandExecutor.execute_each`: one
round trip per round, not one per message). Each message is decided by the job lifecycle and
appended (or recorded as a rejected transition) with its stream sequence as its cause, then
acknowledged. A redelivered message therefore appends nothing new. A malformed message is
terminated, counted and logged with its subject; it never blocks the consumer.

Our workers mask values that look like credentials before they report (DESIGN §12); the
ingest masks again what it records (progress, errors, results, step contents), for a worker
that is not ours: the event log never keeps one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from adapters import tracing
from adapters.clock import SYSTEM_CLOCK
from adapters.eventstore import StoreUnavailable
from domain.commands import RecordStatus, RecordStep
from domain.events import FailureReason
from domain.pricing import DEFAULT_TABLE, PriceTable
from domain.redaction import redact_text, redact_value
from domain.wire import ResultMessage, StatusMessage, WireError, decode_result, decode_status
from domain.wire_steps import StepMessage, decode_step
from services.brain.leadership import Fenced
from services.executor import CommandExecutor, Outcome, Planned
from services.ports.clock import Clock
from services.ports.jobs import Delivery, ReportSource

log = logging.getLogger("baker.brain.ingest")
POISON_AFTER = 5  # deliveries of a message our own code keeps failing on


@dataclass
class IngestStats:
    processed: int = 0
    malformed: int = 0
    rejected: int = 0
    errors: int = 0
    fenced: int = 0
    store_waits: int = 0


class Ingest:
    def __init__(
        self,
        executor: CommandExecutor,
        reports: ReportSource,
        *,
        batch: int = 256,
        on_outcome: Callable[[str, Outcome], None] | None = None,
        store_wait: float = 300.0,
        clock: Clock = SYSTEM_CLOCK,
        prices: PriceTable = DEFAULT_TABLE,
    ) -> None:
        self._executor = executor
        self._prices = prices
        self._reports = reports
        self._clock = clock
        self._batch = batch
        self._on_outcome = on_outcome
        self._store_wait = store_wait
        self.stats = IngestStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and handle messages until `stop` is set, then finish what was fetched."""
        try:
            while not stop.is_set():
                for heads in rounds(await self._reports.fetch(self._batch, wait=0.5)):
                    await self._handle_round(heads)
        finally:
            await self._reports.close()

    async def _handle_round(self, heads: list[Delivery]) -> None:
        """At most one message per job: all decided, their appends pipelined, then acked.
        A failure of our own on one message is logged and never stops the consumer."""
        decided: list[tuple[Delivery, str, Report]] = []
        planned: list[Planned] = []
        for msg in heads:
            parsed = _guarded_call(msg, self._parse, msg)
            if parsed is not None:
                job_id, cmd = parsed
                trace_id = tracing.trace_id_from_headers(msg.headers)
                planned.append(("job", job_id, cmd, trace_id, f"jobs-{msg.seq}"))
                decided.append((msg, job_id, cmd))
        if not planned:
            return
        try:
            results = await self._executor.execute_each(planned)
        except Exception:
            log.exception("a pipelined round failed; its messages go one by one")
            for msg, job_id, cmd in decided:
                await _guarded(msg, self._apply(msg, job_id, cmd))
            return
        waits = []
        for (msg, job_id, cmd), result in zip(decided, results, strict=True):
            if isinstance(result, StoreUnavailable):  # waited out in place, in order
                waits.append(_guarded(msg, self._apply(msg, job_id, cmd, unavailable=result)))
            else:
                _guarded_call(msg, self._settle, msg, job_id, result)
        if waits:
            await asyncio.gather(*waits)

    async def handle(self, msg: Delivery) -> None:
        """Decide one status/result message and acknowledge it."""
        parsed = self._parse(msg)
        if parsed is not None:
            await self._apply(msg, *parsed)

    def _parse(self, msg: Delivery) -> tuple[str, Report] | None:
        """(job id, command) of a status/result/step message; a malformed one is terminated."""
        parts = msg.subject.split(".")
        if len(parts) != 4 or parts[2] not in _DECODERS:
            self._malformed(msg, f"subject {msg.subject} is not a status, result or step subject")
            return None
        kind, job_id = parts[2], parts[3]
        try:
            wire = _DECODERS[kind](msg.data)
        except WireError as exc:
            self._malformed(msg, str(exc))
            return None
        if wire.id != job_id:
            self._malformed(msg, f"id: {wire.id!r} does not match the subject's {job_id!r}")
            return None
        if isinstance(wire, StepMessage):
            return job_id, self._step(wire)
        return job_id, _command(wire, kind)

    def _step(self, wire: StepMessage) -> RecordStep:
        usage = wire.usage.model_dump(by_alias=True) if wire.usage is not None else {}
        cost = self._prices.cost(wire.model, usage) if wire.model else 0.0
        return RecordStep(
            attempt=wire.attempt, step=wire.step, kind=wire.kind, worker_id=wire.worker_id,
            model=wire.model, stop_reason=wire.stop_reason,
            content=tuple(redact_value(wire.content or [])), usage=usage, cost_usd=cost,
            duration_ms=wire.duration_ms, tool_use_id=wire.tool_use_id, tool=wire.tool,
            input=redact_value(wire.input or {}), output=_text(wire.output),
            is_error=bool(wire.is_error),
        )  # fmt: skip

    async def _apply(
        self,
        msg: Delivery,
        job_id: str,
        cmd: Report,
        unavailable: StoreUnavailable | None = None,
    ) -> None:
        # The worker's trace id is kept on the event; no span per message: at thousands of
        # messages a second a span each costs more than the rest of the ingest.
        trace_id = tracing.trace_id_from_headers(msg.headers)
        try:
            outcome: Outcome | Exception = await self._execute_in_order(
                msg, job_id, cmd, trace_id, f"jobs-{msg.seq}", unavailable
            )
        except Exception as exc:
            outcome = exc
        self._settle(msg, job_id, outcome)

    def _settle(self, msg: Delivery, job_id: str, outcome: Outcome | Exception) -> None:
        """Acknowledge a decided message, or hand it back according to what went wrong."""
        if isinstance(outcome, StoreUnavailable):
            msg.nak(delay=2)
            return
        if isinstance(outcome, Fenced):
            # Another Brain leads now: hand the message back to it (the consumer is shared).
            self.stats.fenced += 1
            msg.nak(delay=0.5)
            return
        if isinstance(outcome, Exception):
            self._failed(msg, job_id, outcome)
            return
        self.stats.processed += 1
        if outcome.rejected is not None:
            self.stats.rejected += 1
        if self._on_outcome is not None:
            self._on_outcome(job_id, outcome)
        msg.ack()

    async def _execute_in_order(
        self,
        msg: Delivery,
        job_id: str,
        cmd: Report,
        trace_id: str | None,
        cause: str,
        unavailable: StoreUnavailable | None = None,
    ) -> Outcome:
        """Execute, waiting out a store outage in place (`unavailable`: it has already begun):
        a nak would let this job's later messages be appended before this one."""
        delay = 1.0
        deadline = self._clock.now() + self._store_wait
        while True:
            if unavailable is not None:
                self.stats.store_waits += 1
                if self._clock.now() >= deadline:
                    raise unavailable
                log.warning("event store unavailable; retrying", extra={"job_id": job_id})
                with contextlib.suppress(Exception):
                    msg.in_progress()  # still ours: not redelivered meanwhile
                await self._clock.sleep(delay)  # back-off between tries of the same message
                delay = min(delay * 2, 10.0)
            try:
                return await self._executor.execute(
                    "job", job_id, cmd, trace_id=trace_id, causation_id=cause
                )
            except StoreUnavailable as exc:
                unavailable = exc

    def _failed(self, msg: Delivery, job_id: str, exc: Exception) -> None:
        self.stats.errors += 1
        deliveries = msg.delivered
        log.error(
            "ingest failed on %s (delivery %d)",
            msg.subject,
            deliveries,
            exc_info=exc,
            extra={"job_id": job_id},
        )
        if deliveries >= POISON_AFTER:
            msg.term()
        else:
            msg.nak(delay=1)

    def _malformed(self, msg: Delivery, reason: str) -> None:
        self.stats.malformed += 1
        log.error(
            "malformed message on %s: %s", msg.subject, reason, extra={"subject": msg.subject}
        )
        msg.term()


T = TypeVar("T")
Report = RecordStatus | RecordStep
_DECODERS: dict[str, Callable[[bytes], StatusMessage | ResultMessage | StepMessage]] = {
    "status": decode_status,
    "result": decode_result,
    "step": decode_step,
}


async def _guarded(msg: Delivery, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None (logged) when it raises: one message never stops the rest."""
    try:
        return await work
    except Exception:
        log.exception("handling %s failed", msg.subject, extra={"subject": msg.subject})
        return None


def _guarded_call(msg: Delivery, work: Callable[..., T], *args: Any) -> T | None:
    """`_guarded` for the synchronous steps (parsing, settling): no coroutine per message."""
    try:
        return work(*args)
    except Exception:
        log.exception("handling %s failed", msg.subject, extra={"subject": msg.subject})
        return None


def _job_of(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


D = TypeVar("D", bound=Delivery)


def rounds(msgs: Sequence[D]) -> list[list[D]]:
    """Messages in rounds of at most one per job, each job's in the order they came."""
    queues: dict[str, list[D]] = {}
    for msg in msgs:
        queues.setdefault(_job_of(msg.subject), []).append(msg)
    depth = max((len(q) for q in queues.values()), default=0)
    return [[q[i] for q in queues.values() if i < len(q)] for i in range(depth)]


def _command(wire: StatusMessage | ResultMessage, kind: str) -> RecordStatus:
    extra: dict[str, Any] = {}
    if isinstance(wire, StatusMessage):
        extra["progress"] = _text(wire.progress)
    return RecordStatus(
        status=wire.status,
        worker_id=wire.worker_id,
        attempt=wire.attempt,
        error=_text(wire.error),
        result=redact_value(wire.result),
        duration_ms=wire.duration_ms,
        source="result" if kind == "result" else "status",
        reason=_reason(wire),
        budget=_budget(wire),
        at=datetime.now(UTC),  # a retry's backoff counts from the failure's ingest
        **extra,
    )


def _text(text: str | None) -> str | None:
    return None if text is None else redact_text(text)


def _reason(wire: StatusMessage | ResultMessage) -> FailureReason | None:
    """A failure's reason, from the `reason` field our workers add (unknown to the seed
    protocol, so kept in `extra`): only the reasons a worker may name."""
    reason = (wire.model_extra or {}).get("reason")
    return reason if reason in _WORKER_REASONS and wire.status == "failed" else None


def _budget(wire: StatusMessage | ResultMessage) -> dict[str, Any] | None:
    budget = (wire.model_extra or {}).get("budget")
    return budget if isinstance(budget, dict) else None


_WORKER_REASONS: Final = frozenset({"budget_exceeded", "approval_timeout"})
