"""The worker: take jobs from its work source, run them, report, acknowledge.

Read top to bottom: `run` fetches no more jobs than it has free slots; `_process` runs one job
(cancel check, `received`, `running`, the executor, the result, the ack) while one loop sends
in-progress acks for every job held long; cancel signals stop the job's executor task; on
shutdown the worker stops fetching, lets running jobs finish within a grace period and naks
the rest so another worker takes them. Its collaborators are ports (`services.ports.jobs`),
handed to it by the composition root.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from adapters import tracing
from adapters.clock import SYSTEM_CLOCK
from adapters.executors.base import Execution, StepJournal
from domain.queue import QueueUnavailable
from domain.wire import DispatchMessage, FinalStatus, WireError, decode_dispatch, peek_id
from services.ports.clock import Clock
from services.ports.jobs import CancelSignals, Delivery, ReportSink, WorkSource
from services.ports.output import OutputSink
from services.ports.steps import StepHistory, StepsNotIngested
from services.ports.topics import Heartbeat
from services.worker.executors import ExecutorSettings, command_refusals, execute
from services.worker.journal import WorkerJournal
from services.worker.output import JobOutput
from services.worker.reporter import Reporter

log = logging.getLogger("baker.worker")


@dataclass(frozen=True)
class WorkerSettings:
    executors: ExecutorSettings
    concurrency: int = 4
    ack_wait: float = 60.0
    grace: float = 30.0
    heartbeat_every: float = 30.0
    crash_nak_delay: float = 5.0


@dataclass
class WorkerStats:
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    malformed: int = 0
    crashed: int = 0
    waiting: int = 0
    output_failed: int = 0  # live output messages not sent (best effort: counted, not raised)


Progress = Callable[[str], Awaitable[None]]
JobRunner = Callable[[DispatchMessage, Progress, StepJournal], Awaitable[Execution]]
"""Runs one job, reporting progress through the callable it is given and an agent job's
steps through the journal."""


@dataclass
class Running:
    msg: Delivery
    job_id: str
    pinged: float  # clock time of the delivery or of the last in-progress ack
    execution: asyncio.Future[Execution] | None = None
    task: asyncio.Task[None] | None = None  # the job's own, from `_start` until it ends
    cancel_reason: str | None = None
    shutting_down: bool = False


class Worker:
    def __init__(
        self,
        jobs: WorkSource,
        reports: ReportSink,
        cancels: CancelSignals,
        settings: WorkerSettings,
        *,
        worker_id: str | None = None,
        run: JobRunner | None = None,
        heartbeat: Heartbeat | None = None,
        clock: Clock = SYSTEM_CLOCK,
        steps: StepHistory | None = None,
        output: OutputSink | None = None,
    ) -> None:
        self.id = worker_id or new_worker_id()
        self._output = output
        self._steps = steps
        self.settings = settings
        self._source = jobs
        self.reports = reports
        self._cancels = cancels
        self._run = run or self._execute
        self._heartbeat = heartbeat
        self._clock = clock
        self.running: dict[str, Running] = {}
        self.cancels: dict[str, str] = {}  # job id -> reason, for jobs still in the queue
        self.stats = WorkerStats()
        self._slot_free = asyncio.Event()
        self._jobs: set[asyncio.Task[None]] = set()  # until acked or nak'd, slot freed or not
        self._tracer = tracing.tracer("baker.worker")

    def _execute(
        self, dispatch: DispatchMessage, progress: Progress, journal: StepJournal
    ) -> Awaitable[Execution]:
        if self._output is None:
            return execute(dispatch, self.settings.executors, progress, journal)
        running = self.running.get(dispatch.id)
        attempt = running.msg.delivered if running is not None else 1
        output = JobOutput(self._output, dispatch.id, attempt, clock=self._clock)
        return self._execute_live(dispatch, progress, journal, output)

    async def _execute_live(
        self, dispatch: DispatchMessage, progress: Progress, journal: StepJournal, out: JobOutput
    ) -> Execution:
        try:
            return await execute(dispatch, self.settings.executors, progress, journal, out.write)
        finally:
            out.close()  # what waits goes out before the outcome is reported
            self.stats.output_failed += out.failed

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then shut down gracefully."""
        cancels = await self._cancels.watch_cancels(self._on_cancel)
        self.cancels.update(await self._cancels.signalled_cancels())  # from before we started
        beats = None
        if self._heartbeat is not None:
            beats = asyncio.ensure_future(self._heartbeat(self.id, self._details, stop))
        keep_alive = asyncio.create_task(self._keep_alive())
        log.info("worker %s ready (concurrency %d)", self.id, self.settings.concurrency)
        try:
            await self._fetch_loop(stop)
        finally:
            await self._shutdown()
            keep_alive.cancel()
            await cancels.unsubscribe()
            await self._source.close()
            if beats is not None:
                await beats
            await self.reports.close()

    async def _fetch_loop(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        stopping.add_done_callback(lambda _t: self._slot_free.set())
        try:
            while not stop.is_set():
                free = self.settings.concurrency - len(self.running)
                if free <= 0:
                    self._slot_free.clear()
                    await self._slot_free.wait()
                    continue
                for msg in await self._source.fetch(free, wait=1.0):
                    self._start(msg)
        finally:
            stopping.cancel()

    def _start(self, msg: Delivery) -> None:
        job_id = peek_id(msg.data) or f"unreadable-{msg.seq}"
        running = Running(msg, job_id, self._clock.now())
        self.running[job_id] = running
        # Job tasks are never cancelled before they start (the executor is what a cancel
        # or a shutdown stops), so `_process` itself lets go of the job when it ends: no
        # done-callback, which would cost a loop turn per job.
        running.task = asyncio.create_task(self._process(job_id, running))
        self._jobs.add(running.task)

    def _free_slot(self, running: Running) -> None:
        if self.running.get(running.job_id) is running:
            del self.running[running.job_id]
            self._slot_free.set()

    def _ack(self, running: Running) -> None:
        """Acknowledge a finished job. Its slot is freed first, so that the fetch for the next
        job goes out in the same write as this ack (one wake-up of the server, not two)."""
        self._free_slot(running)
        running.msg.ack()

    async def _process(self, job_id: str, running: Running) -> None:
        try:
            msg = running.msg
            try:
                dispatch = decode_dispatch(msg.data)
            except WireError as exc:
                await self._malformed(msg, exc)
                return
            attempt = attempt_of(dispatch, msg.delivered)
            parent = tracing.extract(msg.headers)
            attributes = {"job.id": job_id, "job.type": dispatch.type, "job.attempt": attempt}
            with tracing.span(self._tracer, "job.run", parent=parent, attributes=attributes):
                headers: dict[str, str] = {}
                tracing.inject(headers)
                reporter = Reporter(
                    self.reports, job_id, self.id, attempt, headers, tracing.trace_id_of(),
                    clock=self._clock,
                )  # fmt: skip
                try:
                    await self._run_job(dispatch, running, reporter)
                except Exception:
                    self.stats.crashed += 1
                    log.exception("job handler crashed", extra={"job_id": job_id})
                    with contextlib.suppress(Exception):
                        msg.nak(delay=self.settings.crash_nak_delay)
        finally:
            self._jobs.discard(running.task)
            self._free_slot(running)

    async def _run_job(
        self, dispatch: DispatchMessage, running: Running, reporter: Reporter
    ) -> None:
        msg = running.msg
        reason = self.cancels.pop(dispatch.id, None)
        if reason is not None:
            await self._cancelled_unrun(running, reporter, f"cancelled before it started: {reason}")
            return
        if running.shutting_down:  # stopped between fetch and start: someone else runs it
            msg.nak()
            return
        started = self._clock.now()
        # The executor starts while `received` and `running` are on their way (both are
        # queued on the connection before its first step runs); progress and the outcome are
        # reported only once both are stored, so the stream keeps the order.
        reported = asyncio.Event()

        async def progress(text: str) -> None:
            await reported.wait()
            await reporter.progress(text)

        journal = WorkerJournal(reporter, self._steps, reported, self._clock)
        execution = running.execution = asyncio.ensure_future(
            self._run(dispatch, progress, journal)
        )
        try:
            await reporter.started()
        except BaseException:
            execution.cancel()
            await asyncio.wait({execution})
            raise
        reported.set()
        if not execution.done():
            await _settled(execution)
        duration = int((self._clock.now() - started) * 1000)
        await self._report_outcome(running, reporter, duration)

    async def _cancelled_unrun(self, running: Running, reporter: Reporter, error: str) -> None:
        """A job cancelled before its executor started: report it, and it is done."""
        await reporter.finish("cancelled", error=error)
        self.stats.cancelled += 1
        self._ack(running)

    async def _report_outcome(self, running: Running, reporter: Reporter, duration: int) -> None:
        task, msg = running.execution, running.msg
        assert task is not None
        if task.cancelled():
            if running.shutting_down:  # not the job's fault: let another worker run it
                msg.nak()
                return
            await reporter.finish(
                "cancelled", error=f"cancelled: {running.cancel_reason}", duration_ms=duration
            )
            self.stats.cancelled += 1
        elif isinstance(exc := task.exception(), StepsNotIngested):
            log.warning("%s; handing the job back", exc, extra={"job_id": running.job_id})
            msg.nak(delay=self.settings.crash_nak_delay)  # a later delivery resumes it
            return
        elif exc is not None:
            raise exc  # our own crash: nak and redeliver
        elif task.result().waiting:  # an approval asked: the job is waiting, not this worker's
            self.stats.waiting += 1
        else:
            result = task.result()
            status: FinalStatus = "completed" if result.ok else "failed"
            await reporter.finish(
                status, result=result.result, error=result.error, duration_ms=duration,
                reason=result.reason, details=result.details,
            )  # fmt: skip
            if result.ok:
                self.stats.completed += 1
            else:
                self.stats.failed += 1
        self._ack(running)

    async def _keep_alive(self) -> None:
        """In-progress acks for every job held ack-wait/3 since its delivery or its last one
        (one loop for all jobs: most finish long before), so a long job is not redelivered;
        each time, a look at the cancel bucket too, for a signal missed while disconnected."""
        every = self.settings.ack_wait / 3
        while True:
            await self._clock.sleep(every / 2)  # so no job waits longer than ack-wait/2
            now = self._clock.now()
            for job_id, running in list(self.running.items()):
                if now - running.pinged >= every:
                    running.pinged = now
                    await self._still_working(job_id, running)

    async def _still_working(self, job_id: str, running: Running) -> None:
        with contextlib.suppress(Exception):
            running.msg.in_progress()
            if running.cancel_reason is None:
                reason = await self._cancels.cancel_signal(job_id)
                if reason is not None:
                    self._cancel(job_id, reason)

    def _on_cancel(self, job_id: str, reason: str) -> None:
        """A cancel signal, as it is put."""
        self._cancel(job_id, reason)

    def _cancel(self, job_id: str, reason: str) -> None:
        self.cancels[job_id] = reason
        running = self.running.get(job_id)
        if running is None:
            return
        running.cancel_reason = reason
        if running.execution is not None:
            running.execution.cancel()
        log.info("cancelling job: %s", reason, extra={"job_id": job_id})

    async def _malformed(self, msg: Delivery, exc: WireError) -> None:
        self.stats.malformed += 1
        msg.term()
        job_id = peek_id(msg.data)
        log.error("malformed dispatch message: %s", exc, extra={"job_id": job_id})
        if job_id is None:
            return
        reporter = Reporter(
            self.reports, job_id, self.id, msg.delivered, {}, None, clock=self._clock
        )
        with contextlib.suppress(QueueUnavailable):
            await reporter.finish("failed", error=f"malformed dispatch message: {exc}")

    async def _shutdown(self) -> None:
        if self.running:
            log.info(
                "waiting up to %.0fs for %d running jobs", self.settings.grace, len(self.running)
            )
            await self._within_grace(asyncio.wait(set(self._jobs)))
        for running in list(self.running.values()):
            running.shutting_down = True
            if running.execution is not None:
                running.execution.cancel()
        await asyncio.gather(*self._jobs)  # the rest nak'd, and acks on their way

    async def _within_grace(self, jobs_done: Awaitable[Any]) -> None:
        """Wait for `jobs_done`, at most the grace period on the worker's clock (cancelling the
        wait leaves the jobs running)."""
        done = asyncio.ensure_future(jobs_done)
        grace = asyncio.ensure_future(self._clock.sleep(self.settings.grace))
        await asyncio.wait({done, grace}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (done, grace):
            waiter.cancel()
        await asyncio.gather(done, grace, return_exceptions=True)

    def _details(self) -> dict[str, Any]:
        return {
            "activeJobs": sorted(self.running),
            "concurrency": self.settings.concurrency,
            "completed": self.stats.completed,
            "failed": self.stats.failed,
            "cancelled": self.stats.cancelled,
            "commandRefusals": command_refusals(),  # by rule, in this process
        }


def attempt_of(dispatch: DispatchMessage, delivered: int) -> int:
    """The job's attempt: deliveries of this message, after the attempts of the messages that
    queued the job before it (a job queued again after an approval carries its next one)."""
    return (dispatch.attempt or 1) - 1 + delivered


def new_worker_id() -> str:
    return f"worker-{uuid.uuid4().hex[:8]}"


async def _settled(task: asyncio.Future[Any]) -> None:
    """Wait until `task` has ended, however it ended (the caller reads its result, error or
    cancellation); a cancellation of the waiting task itself still propagates."""
    try:
        await task
    except BaseException:
        waiting = asyncio.current_task()
        if waiting is not None and waiting.cancelling():
            raise
