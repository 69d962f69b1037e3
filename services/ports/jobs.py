"""The job queue's ports, in our own types.

The Brain queues jobs and signals cancels (`JobQueue`); a worker takes jobs from a work source
(`WorkSource`), reports on them (`ReportSink`) and hears cancels (`CancelSignals`); the Brain's
ingest takes those reports (`ReportSource`), and the max-deliveries advisories
(`Advisories`). Deliveries are work-queue messages: each is settled once with `ack`, `nak`
(redelivered later with a higher delivery count, up to the consumer's max deliver), `term`
(never again) or kept with `in_progress`. Settling is a plain call: it is sent without waiting
for the server (acknowledgements are one-way), so it costs no coroutine on the hot path.

Implemented over JetStream in `adapters/nats/` and in memory in `tests/fakes/jobqueue.py`; both
pass `tests/contract/job_ports_contract.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from domain.queue import LaneState, Report
from domain.wire import DispatchMessage
from services.ports.topics import Subscription


class Delivery(Protocol):
    """One message delivered from a durable work-queue consumer."""

    @property
    def data(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, str] | None: ...
    @property
    def subject(self) -> str: ...
    @property
    def seq(self) -> int:
        """The message's stream sequence (the same on every delivery of it)."""
        ...

    @property
    def delivered(self) -> int:
        """How many times it has been delivered, this time included (from 1)."""
        ...

    @property
    def pending(self) -> int:
        """Messages left for the consumer, not yet delivered, as this one went out: a hint
        (more may have come since), so a taker need not ask an empty queue again."""
        ...

    def ack(self) -> None:
        """Done with it: it is removed from the queue."""
        ...

    def nak(self, delay: float | None = None) -> None:
        """Give it back: delivered again (after `delay` seconds), unless at max deliver."""
        ...

    def in_progress(self) -> None:
        """Still working on it: its ack-wait starts again."""
        ...

    def term(self) -> None:
        """Never deliver it again (a message that can never be handled)."""
        ...


class DeliverySource(Protocol):
    """A durable consumer's deliveries; a delivery not settled within the ack-wait comes
    again, with a higher delivery count."""

    async def fetch(self, n: int, wait: float) -> Sequence[Delivery]:
        """Up to `n` deliveries: what is there now, else the first to arrive within `wait`
        seconds (none: an empty list). Never more than `n` outstanding for this call."""
        ...

    async def close(self) -> None:
        """Stop fetching (a later `fetch` starts again)."""
        ...


WorkSource = DeliverySource  # the worker's jobs (every lane of `baker.jobs.dispatch`)
ReportSource = DeliverySource  # the ingest's status, result and step reports, in publish order


class LaneHints(Protocol):
    """Word that a job was queued on a lane other than `normal` (DESIGN §11): a hint, not the
    job (it may come a moment before the job can be fetched), so a worker need not ask an
    empty `high` or `low` lane for every job it takes."""

    async def watch_lanes(self, on_queued: Callable[[str], None]) -> Subscription:
        """Call `on_queued(lane)` for every job queued on `high` or `low` from now on."""
        ...


class ReportSink(Protocol):
    async def report_all(self, reports: Sequence[Report]) -> None:
        """Publish reports pipelined, stored in this order; each report's `msg_id` is stored
        once however often it is sent. `QueueFull` or `QueueUnavailable` (domain.queue)."""
        ...

    async def close(self) -> None:
        """Release what publishing holds (a later report starts again)."""
        ...


class CancelSignals(Protocol):
    """Cancel signals as a worker sees them: live, and those sent before it started."""

    async def watch_cancels(self, on_cancel: Callable[[str, str], None]) -> Subscription:
        """Call `on_cancel(job_id, reason)` for every cancel signalled from now on."""
        ...

    async def signalled_cancels(self) -> dict[str, str]:
        """Every cancel signal still kept (the last day): job id -> reason."""
        ...

    async def cancel_signal(self, job_id: str) -> str | None:
        """The reason of a cancel signal for `job_id`, if one was sent."""
        ...


class JobQueue(CancelSignals, Protocol):
    """The Brain's side of the queue."""

    async def dispatch(self, msg: DispatchMessage, headers: dict[str, str]) -> int:
        """Queue a job for the workers with the job id as its message id (a repeat is not
        queued twice); its stream sequence. `QueueFull` or `QueueUnavailable`."""
        ...

    async def dispatch_all(self, items: Sequence[tuple[DispatchMessage, dict[str, str]]]) -> None:
        """`dispatch` for many jobs, pipelined (a batch). `QueueFull` or `QueueUnavailable`
        when any is refused: which were queued is then unknown, and `dispatch` of each again
        is safe (the job id is the message id)."""
        ...

    async def signal_cancel(self, job_id: str, reason: str | None) -> None:
        """Tell every worker that `job_id` is to be cancelled."""
        ...

    async def fill(self) -> tuple[int, int]:
        """(messages in the queue's stream, its message limit; -1 when unlimited)."""
        ...

    async def depth(self) -> tuple[int, int]:
        """(jobs waiting for a worker, jobs delivered but not yet acknowledged)."""
        ...

    async def lanes(self) -> dict[str, LaneState]:
        """Each priority lane (`domain.priority.PRIORITIES`, in that order): jobs waiting, in
        flight, and whether its consumer is paused."""
        ...

    async def pause_lanes(self, paused: bool) -> None:
        """Pause (True) or resume (False) every lane: while paused no worker is given a job;
        jobs already delivered run to their end. Idempotent. `QueueUnavailable`."""
        ...

    async def queued_jobs(self) -> set[str]:
        """The jobs with any message in the queue's stream now (a dispatch waiting or in a
        worker's hands, or a report not yet ingested), read in stream order to its end."""
        ...

    async def close(self) -> None: ...


class Advisories(DeliverySource, Protocol):
    """Max-deliveries advisories of the workers' consumer, and the queued jobs they name."""

    async def ingest_pending(self) -> int:
        """Reports not yet ingested (waiting or delivered, not yet acknowledged)."""
        ...

    async def queued(self, seq: int) -> tuple[bytes, Mapping[str, str] | None] | None:
        """The data and headers of the queued message at `seq`, or None if it is gone."""
        ...

    async def remove(self, seq: int) -> None:
        """Delete the queued message at `seq` (nothing if it is gone already)."""
        ...
