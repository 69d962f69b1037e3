"""Schedules on a real server (DESIGN §11): two Brains racing on one log fire each slot of an
every-second schedule exactly once, with one job per slot, and the jobs run."""

from __future__ import annotations

import asyncio
import contextlib

from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from services.bootstrap.parts import build_brain
from services.brain.brain import BrainSettings
from services.executor import CommandExecutor
from tests.integration.pipeline import running_pipeline
from tests.polling import until

JOB = {"type": "command", "payload": {"command": "echo slot"}}


async def test_two_racing_brains_fire_each_slot_once(nats_server: NatsServerProcess) -> None:
    async with running_pipeline(nats_server) as pipe:
        await pipe.start_worker()
        nc = await Client.connect(Options(url=nats_server.url, name="second-brain"))
        store = JetStreamEventStore(nc)
        second = build_brain(nc, CommandExecutor(store), BrainSettings(check_every=0.2))
        assert pipe.brain.scheduler is not None and second.scheduler is not None
        await pipe.brain.scheduler.create("every-second", {"every_seconds": 1, "job": JOB})
        await second.scheduler.seed()  # both know it, as two Brains that both started would
        stop = asyncio.Event()
        racing = asyncio.create_task(second.scheduler.run(stop))
        try:

            async def fired() -> list[object] | None:
                history = await pipe.store.load("schedule", "every-second")
                done = [
                    e.envelope.data for e in history.events if e.envelope.type == "ScheduleFired"
                ]
                return done if len(done) >= 4 else None

            slots = await until(fired, "4 slots fired", timeout=20)
        finally:
            stop.set()
            await racing
            with contextlib.suppress(Exception):
                await store.close()
            await nc.close()
        times = [s.slot for s in slots]  # type: ignore[attr-defined]
        assert times == sorted(set(times)), "a slot fired twice"
        jobs = [s.job_id for s in slots]  # type: ignore[attr-defined]
        assert len(set(jobs)) == len(jobs)
        for job_id in jobs:
            history = await pipe.wait_job(job_id, {"completed"})
            dispatched = [e for e in history.events if e.envelope.type == "JobDispatched"]
            assert len(dispatched) == 1
            assert dispatched[0].envelope.data.schedule["name"] == "every-second"
