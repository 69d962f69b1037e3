"""The window the fencing lease leaves, shown: a Brain cut off from the server's answers keeps
appending after another Brain took a newer generation, until its lease runs out. JetStream
stores those appends (the fence is checked in the Brain, not by the server: see the README's
"Fencing" for why); they carry the old generation, and the window ends `max_unconfirmed`
seconds after the Brain's last confirming read was sent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS

from adapters.eventstore import NEW
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.server import NatsServerProcess
from tests.integration.test_fencing import brains, dispatched, job_id, refuses  # noqa: F401
from tests.polling import until
from tests.support.proxy import HoldingProxy


async def test_a_cut_off_brain_appends_until_its_lease_runs_out(
    brains: Callable[..., Any],  # noqa: F811 - the fixture imported above
    nats_server: NatsServerProcess,
    provisioned: NATS,
) -> None:
    host, port = nats_server.url.removeprefix("nats://").rsplit(":", 1)
    proxy = HoldingProxy(host, int(port))
    await proxy.start()
    lease = 2.0
    append: asyncio.Task[Any] | None = None
    try:
        blue = await brains(
            "blue", f"nats://127.0.0.1:{proxy.port}", confirm_every=0.1, max_unconfirmed=lease
        )
        green = await brains("green")
        mine = await blue.leadership.take()
        await until(lambda: blue.leadership.unconfirmed_for() < 0.2, "blue confirmed lately")
        proxy.hold_replies()  # from here on blue hears nothing: not the watch, not its reads
        cut_off = time.monotonic()
        newer = await green.leadership.take()
        assert newer.generation == mine.generation + 1

        # The window: blue still believes it leads, so its append goes out and is stored.
        late = job_id()
        append = asyncio.create_task(blue.executor.append("job", late, dispatched(), NEW))
        reader = JetStreamEventStore(provisioned)
        stored = await until(
            lambda: _stored(reader, late), "the late append stored", timeout=lease * 5
        )
        assert stored.envelope.generation == mine.generation < newer.generation

        # It closes when the lease runs out: no confirming read for `max_unconfirmed` seconds.
        await until(lambda: refuses(blue.leadership), "blue's lease to run out", timeout=lease * 5)
        assert time.monotonic() - cut_off >= lease - 0.2  # not before the lease is over
        refused = job_id()
        with contextlib.suppress(Exception):
            await blue.executor.append("job", refused, dispatched(), NEW)
        assert not (await reader.load("job", refused)).exists  # refused before publishing
        await reader.close()
    finally:
        proxy.release()
        if append is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(append, 10)
        await proxy.close()


async def _stored(reader: JetStreamEventStore, job: str) -> Any:
    history = await reader.load("job", job)
    return history.events[0] if history.events else None
