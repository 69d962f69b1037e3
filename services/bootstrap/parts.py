"""Building the parts of the system on a connection: a Brain with everything it is handed,
a worker, a projector. Tests and benches build their parts here too."""

from __future__ import annotations

import socket

from adapters.clock import SYSTEM_CLOCK
from adapters.eventstore import EventStore
from adapters.nats.advisories import JetStreamAdvisories
from adapters.nats.bus import NatsBus
from adapters.nats.client import Client
from adapters.nats.deliveries import JetStreamDeliveries
from adapters.nats.job_queue import JetStreamJobQueue
from adapters.nats.lease import JetStreamLeases
from adapters.nats.output import NatsOutput
from adapters.nats.step_history import JetStreamStepHistory
from adapters.nats.streams import (
    INGEST_CONSUMER,
    JOBS_STREAM,
    LANE_CONSUMERS,
    TASKS_CONSUMER,
    TASKS_STREAM,
)
from adapters.readmodel import ReadModelStore
from domain.lease import read_model_lease
from domain.priority import PRIORITIES
from services.bootstrap.runtime import heartbeat_for
from services.brain.advisories import MaxDeliveries
from services.brain.brain import Brain, BrainSettings, JobOutcomes
from services.brain.dispatcher import Dispatcher
from services.brain.ingest import Ingest
from services.brain.scheduler import Scheduler
from services.brain.watchdog import Watchdog
from services.executor import CommandExecutor
from services.heartbeat import HEALTH_SUBJECT
from services.lease import LeaseCandidate, LeaseSettings
from services.ports.clock import Clock
from services.projector import Projector, ProjectorSettings
from services.projector_standby import Checkpoint, StandbyProjector
from services.tasks.service import TaskService
from services.topic import BusTopic
from services.worker.lanes import lane_source
from services.worker.worker import Worker, WorkerSettings


def build_brain(
    nc: Client,
    executor: CommandExecutor,
    settings: BrainSettings | None = None,
    *,
    instance: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
    kind: type[Brain] = Brain,
) -> Brain:
    """A Brain on `nc` whose commands go through `executor` (fenced by the caller's
    leadership, or not at all for a Brain that is always the only one). `kind`: the class
    to build (a test's subclass)."""
    settings = settings or BrainSettings()
    bus = NatsBus(nc)
    queue = JetStreamJobQueue(nc)
    watchdog = Watchdog(
        executor,
        queue,
        BusTopic(bus, HEALTH_SUBJECT),  # workers' heartbeats name the jobs they run
        stuck_after=settings.stuck_after,
        undeliverable_after=settings.undeliverable_after,
        check_every=settings.check_every,
        clock=clock,
    )
    outcomes = JobOutcomes(watchdog)
    gated = watchdog.gate  # concurrency keys (DESIGN §11): every publish of a job passes it
    dispatcher = Dispatcher(executor, gated, on_outcome=outcomes)
    return kind(
        queue=gated,
        dispatcher=dispatcher,
        ingest=Ingest(
            executor,
            JetStreamDeliveries(nc, JOBS_STREAM, INGEST_CONSUMER),
            on_outcome=outcomes,
            clock=clock,
            prices=settings.prices,
        ),
        advisories=MaxDeliveries(executor, JetStreamAdvisories(nc), clock=clock),
        watchdog=watchdog,
        outcomes=outcomes,
        tasks=TaskService(
            bus, executor, JetStreamDeliveries(nc, TASKS_STREAM, TASKS_CONSUMER), clock=clock
        ),
        heartbeat=heartbeat_for(bus, "brain", settings.heartbeat_every),
        instance=instance,
        scheduler=Scheduler(executor, dispatcher, clock=clock),
    )


def build_worker(nc: Client, settings: WorkerSettings, *, worker_id: str | None = None) -> Worker:
    """A worker of the lanes' consumers on `nc`, high first (it closes its queue when it
    stops)."""
    queue = JetStreamJobQueue(nc)
    return Worker(
        lane_source(
            [JetStreamDeliveries(nc, JOBS_STREAM, LANE_CONSUMERS[p]) for p in PRIORITIES],
            hints=queue,
        ),
        queue,
        queue,
        settings,
        worker_id=worker_id,
        heartbeat=heartbeat_for(NatsBus(nc), "worker", settings.heartbeat_every),
        steps=JetStreamStepHistory(nc),
        output=NatsOutput(nc),
    )


def build_projector(
    nc: Client,
    store: EventStore,
    read_model: ReadModelStore,
    settings: ProjectorSettings | None = None,
) -> Projector:
    """A projector of `store` into `read_model` with its heartbeats on `nc`."""
    settings = settings or ProjectorSettings()
    beat = heartbeat_for(NatsBus(nc), "projector", settings.heartbeat_every)
    return Projector(store, read_model, settings, heartbeat=beat)


def build_standby_projector(
    nc: Client,
    store: EventStore,
    read_model: ReadModelStore,
    settings: ProjectorSettings | None = None,
    *,
    location: str,
    checkpoint: Checkpoint | None = None,
    instance: str | None = None,
    lease: LeaseSettings | None = None,
) -> StandbyProjector:
    """A projector of `store` into `read_model` that applies only while it holds the read
    model's lease (`baker projector`, the Brain's own), with heartbeats saying active or
    standby; `location` names the read model for the lease (`read_model_location`)."""
    settings = settings or ProjectorSettings()
    projector = Projector(store, read_model, settings, instance=instance)
    host = socket.gethostname()
    candidate = LeaseCandidate(
        JetStreamLeases(nc), read_model_lease(location),
        projector.instance, host=host, settings=lease,
    )  # fmt: skip
    beat = heartbeat_for(NatsBus(nc), "projector", settings.heartbeat_every)
    return StandbyProjector(projector, candidate, checkpoint=checkpoint, heartbeat=beat)
