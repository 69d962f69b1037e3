"""`baker projector`: fold the event log into the read model while holding its lease
(standing by while another projector holds it, DESIGN §13)."""

from __future__ import annotations

import argparse
import asyncio
import socket

from rich.markup import escape

from adapters.eventstore import SequenceGap
from services.bootstrap import runtime
from services.bootstrap.parts import build_standby_projector
from services.bootstrap.readmodel import read_model_location, read_model_store
from services.cli.app_support import run_async
from services.cli.output import fail
from services.config import Settings
from services.projector import ProjectorSettings, ReadModelAhead, rate_meter
from services.projector_standby import StandbyProjector
from services.signals import stop_on_signals
from services.tuning import tune_gc, tune_projector_threads


def cmd_projector(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        tune_gc()
        if settings.db_url is not None:  # measured to help on PostgreSQL only
            tune_projector_threads()
        stop = asyncio.Event()
        stop_on_signals(stop)
        async with runtime(settings, settings.nats_url_for("projector"), "baker-projector") as rt:
            store = read_model_store(settings)
            read_model = store.reader()
            projector = build_standby_projector(
                rt.nc,
                rt.store,
                store,
                ProjectorSettings(batch=args.batch, heartbeat_every=settings.heartbeat_every),
                location=read_model_location(settings, socket.gethostname()),
                checkpoint=read_model.applied,
            )
            try:
                return await _project(projector, stop, store.label)
            finally:
                await read_model.close()
                await store.close()

    return run_async(go())


async def _project(projector: StandbyProjector, stop: asyncio.Event, label: str) -> int:
    """Check the read model, then apply while holding its lease, standing by otherwise."""
    try:
        await projector.open()
    except (ReadModelAhead, SequenceGap) as exc:
        return fail(f"{exc}; run `baker rebuild` after checking BAKER_DB", 3)
    except Exception as exc:  # a database that is not ours, a full disk, …
        why = escape(f"{type(exc).__name__}: {exc}")
        return fail(f"cannot open the read model {label}: {why}", 1)
    start = projector.applied + 1
    print(
        f"baker projector {projector.instance}: from seq {start} once it holds the lease "
        "(standing by while another projector does)", flush=True,
    )  # fmt: skip
    meter = asyncio.create_task(rate_meter(projector.projector))
    try:
        await projector.run(stop)
    except (ReadModelAhead, SequenceGap) as exc:
        return fail(f"{exc}; run `baker rebuild` after checking the stream", 3)
    except Exception as exc:  # the store or the database: say so, exit non-zero
        why = escape(f"{type(exc).__name__}: {exc}")
        return fail(f"projector stopped after seq {projector.applied}: {why}", 1)
    finally:
        meter.cancel()
    return 0
