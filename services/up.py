"""`baker up`: the whole system in one process on the embedded default (DESIGN §7).

Unless `BAKER_NATS_URL` is set, a child `nats-server -js` is started with its store under the
data dir; it is stopped on Ctrl-C or SIGTERM (and dies with us if we are killed). It admits one
user per role (DESIGN §12), and each part connects as its own: the Brain (with its projector)
as `brain`, each worker as `worker`, the monitor as `monitor`, the launcher as `launcher`, and
the task runners it starts as `task-runner`. An external server is used as its URL says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.nats.connector import redact_url
from adapters.nats.server import NatsServerMissing, NatsServerProcess, NatsServerTooOld
from adapters.nats.users import UsersFileError
from domain import nats_config
from services import embedded as records
from services.bootstrap import runtime
from services.bootstrap.brain_process import start_brain_process, stop_brain_process
from services.config import Settings
from services.projector import ProjectorFailed
from services.signals import stop_on_signals, watch_stopping

log = logging.getLogger("baker.up")


@dataclass
class UpOptions:
    nats_port: int = -1
    workers: int = 2
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    on_stopping: Callable[[], None] = lambda: None  # once the stop begins


async def run_up(settings: Settings, options: UpOptions) -> int:
    embedded: NatsServerProcess | None = None
    url = settings.nats_url
    passwords: dict[str, str] | None = None  # an external server: its URL is the operator's
    if url is None:
        try:
            config = records.prepare_roles(settings.data_dir)
            embedded = NatsServerProcess(
                settings.data_dir / "nats", port=options.nats_port, config=config
            )
            # Started from this (main) thread on purpose: the child's parent-death signal is
            # tied to the thread that spawned it.
            url = embedded.start()
        except (NatsServerMissing, NatsServerTooOld, UsersFileError, ValueError) as exc:
            log.error("%s", exc)  # ValueError: a bad BAKER_NATS_SCHED
            return 1
        passwords = records.passwords(settings.data_dir)
    as_role = _role_urls(url, passwords)
    stop_on_signals(options.stop)
    watch: asyncio.Task[None] | None = None
    try:
        if embedded is not None and embedded.pid is not None:
            records.record(settings.data_dir, url, embedded.pid)  # the CLI finds it there
        async with runtime(settings, as_role("brain"), "baker-up") as rt:
            head = await rt.store.head_seq()
            where = f"embedded, pid {embedded.pid}" if embedded else "external"
            print(f"baker up: NATS {redact_url(url)} ({where})", flush=True)
            print(f"baker up: data dir {settings.data_dir.resolve()}", flush=True)
            print(f"baker up: event log holds {head} events; streams provisioned", flush=True)
            proc = await start_brain_process(
                rt, settings, options.stop, url, workers=options.workers, monitor=True,
                role_url=as_role,
            )  # fmt: skip
            parts = f"brain {proc.brain.instance}, projector, monitor, {options.workers} workers"
            print(f"baker up: {parts}", flush=True)
            print(f"baker up: dashboard http://{settings.api_host}:{proc.port}/", flush=True)
            print("baker up: running; Ctrl-C or SIGTERM stops everything", flush=True)
            await options.stop.wait()
            print("baker up: stopping", flush=True)
            watch = watch_stopping(log)
            options.on_stopping()
            await stop_brain_process(proc)
    except ProjectorFailed as exc:
        log.error("%s", exc)
        return 3
    finally:
        if embedded is not None:
            if embedded.pid is not None:
                records.forget(settings.data_dir, embedded.pid)
            await asyncio.to_thread(embedded.stop)
        if watch is not None:
            watch.cancel()
    return 0


def _role_urls(url: str, passwords: dict[str, str] | None) -> Callable[[str], str]:
    """The URL each part connects with: the embedded server's with the part's role user."""

    def as_role(role: str) -> str:
        return url if passwords is None else nats_config.role_url(url, role, passwords[role])

    return as_role
