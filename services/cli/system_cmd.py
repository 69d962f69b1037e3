"""`baker up`, `provision`, the system views (`extensions`, `health`, `handoff`) and `events`."""

from __future__ import annotations

import argparse
import faulthandler
from collections.abc import Callable
from typing import Any

import orjson

from adapters.nats.client import Client
from adapters.nats.streams import ProvisioningError, provision
from services.bootstrap import topology
from services.bootstrap.settings import checked_command_sandbox
from services.cli.app_support import api_client, api_json, checked_id, refused, run_async
from services.cli.output import emit_table, event_cells, fail, usage_error
from services.config import Settings
from services.up import UpOptions, run_up


def register(commands: Any) -> None:
    up = commands.add_parser(
        "up",
        help="run the whole system in one process (embedded NATS unless BAKER_NATS_URL is set)",
    )
    up.add_argument(
        "--nats-port", type=int, default=-1, help="port for the embedded nats-server (-1: free)"
    )
    up.add_argument("--workers", type=int, default=2, help="workers to run in-process (default 2)")
    up.set_defaults(handler=cmd_up)

    prov = commands.add_parser(
        "provision",
        help="create the streams and consumers if missing; set every stream's replicas to "
        "BAKER_REPLICAS (in place, messages and consumers kept)",
    )
    prov.add_argument("--json", action="store_true", help="machine-readable output")
    prov.set_defaults(handler=cmd_provision)

    for name, path, title, render in VIEWS:
        view = commands.add_parser(name, help=title)
        view.add_argument("--json", action="store_true", help="the API's JSON document")
        view.set_defaults(handler=cmd_view, path=path, title=title, render=render)

    events = commands.add_parser("events", help="search job events in the read model")
    events.add_argument("--job", help="one job id")
    events.add_argument("--type", help="event type, e.g. JobFailed or TransitionRejected")
    events.add_argument("--worker", help="one worker id")
    events.add_argument("--since", help="ISO-8601 time (inclusive)")
    events.add_argument("--until", help="ISO-8601 time (inclusive)")
    events.add_argument("--limit", type=int, default=100, help="at most this many (1-500)")
    events.add_argument("--json", action="store_true", help="the API's JSON document")
    events.set_defaults(handler=cmd_events)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers < 0:
        usage_error("baker up: --workers must be 0 or more")
    if not -1 <= args.nats_port <= 65535:
        usage_error("baker up: --nats-port must be a port (0-65535), or -1 for a free one")
    if args.workers:
        checked_command_sandbox(settings)  # a sandbox it cannot set up stops it at once
    options = UpOptions(nats_port=args.nats_port, workers=args.workers, on_stopping=_stacks_later)
    return run_async(run_up(settings, options))


def _stacks_later() -> None:
    """The process is stopping: should it still run in 30 s (a thread the event loop's end or
    the interpreter's exit waits for), every thread's stack goes to stderr, every 30 s."""
    faulthandler.dump_traceback_later(30.0, repeat=True)


def cmd_provision(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        nc = await Client.connect(settings.nats(settings.nats_url_for("brain"), "baker-cli"))
        try:
            # The operator's command: it may change replicas, which daemons only report.
            done = await provision(nc, topology(settings), scale=True)
        except ProvisioningError as exc:
            return fail(str(exc))
        finally:
            await nc.close()
        emit_table(
            "JetStream",
            ("stream/consumer", "state"),
            sorted(done.items()),
            as_json=args.json,
            keys=("name", "state"),
        )
        return 0

    return run_async(go())


async def _get(settings: Settings, path: str, params: dict[str, Any] | None = None) -> Any:
    async with api_client(settings) as client:
        status, doc = await api_json(client, settings, "GET", path, params=params)
    if status != 200:
        raise refused(status, doc)
    return doc


def cmd_view(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        doc = await _get(settings, args.path)
        if args.json:
            print(orjson.dumps(doc).decode())
        else:
            args.render(args.title, doc)
        return 0

    return run_async(go())


def _extensions(title: str, doc: dict[str, Any]) -> None:
    rows = [
        (e.get("id"), e.get("name"), e.get("version"), e.get("status"),
         len(e.get("tools") or []), e.get("changedAt"))
        for e in doc.get("extensions", [])
    ]  # fmt: skip
    emit_table(title, ("id", "name", "version", "status", "tools", "since"), rows)


def _health(title: str, doc: dict[str, Any]) -> None:
    rows = [
        (s.get("service"), s.get("instance"), s.get("status"), s.get("since"),
         s.get("lastSeen") or "")
        for s in doc.get("services", [])
    ]  # fmt: skip
    emit_table(title, ("service", "instance", "status", "since", "last seen"), rows)
    checks = [
        (name, c.get("status"), ", ".join(f"{k}={v}" for k, v in c.items() if k != "status"))
        for name, c in doc.get("checks", {}).items()
    ]
    emit_table("checks", ("check", "status", "detail"), checks)


def _handoff(title: str, doc: dict[str, Any]) -> None:
    active = doc.get("active") or {}
    print(f"active brain: {active.get('instance', 'none')}  generation: {doc.get('generation')}")
    if progress := doc.get("inProgress"):
        print(
            f"handoff in progress: {progress.get('id')} ({progress.get('status')})"
            f" {progress.get('fromInstance')} -> {progress.get('toInstance')}"
        )
    rows = [
        (h.get("id"), h.get("status"), h.get("fromInstance"), h.get("toInstance"),
         h.get("generation"), h.get("requestedAt"))
        for h in doc.get("history", [])
    ]  # fmt: skip
    emit_table(f"{title}s", ("id", "status", "from", "to", "generation", "requested"), rows)


def cmd_events(args: argparse.Namespace, settings: Settings) -> int:
    if args.job is not None:
        checked_id(args.job, "--job")
    if not 1 <= args.limit <= 500:
        usage_error("baker events: --limit must be 1..500")
    given = {
        "jobId": args.job, "type": args.type, "workerId": args.worker,
        "since": args.since, "until": args.until, "limit": args.limit,
    }  # fmt: skip

    async def go() -> int:
        doc = await _get(settings, "/api/events", {k: v for k, v in given.items() if v})
        if args.json:
            print(orjson.dumps(doc).decode())
            return 0
        rows = [(e.get("seq"), e.get("aggregateId"), *event_cells(e)) for e in doc["events"]]
        more = " (more match: narrow the search or raise --limit)" if doc.get("more") else ""
        emit_table(
            f"{len(rows)} job events{more}",
            ("seq", "job", "time", "event", "attempt", "worker", "detail"),
            rows,
        )
        return 0

    return run_async(go())


Render = Callable[[str, dict[str, Any]], None]
VIEWS: tuple[tuple[str, str, str, Render], ...] = (
    ("extensions", "/api/extensions", "registered extensions", _extensions),
    ("health", "/api/system/health", "service health", _health),
    ("handoff", "/api/system/handoff", "Brain handoff", _handoff),
)
