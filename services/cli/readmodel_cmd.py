"""`baker projector`, `rebuild`, `verify`, `jobs`, `job`: the read model from the command line."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from adapters.eventstore import SequenceGap
from adapters.readmodel import ReadModelStore
from domain.events import parse_time
from projections import queries
from projections.pit import jobs_as_of, seq_at
from projections.sql import ReadDb
from services.bootstrap import runtime
from services.bootstrap.readmodel import read_model_store
from services.cli.app_support import run_async
from services.cli.dispatch_file import label_arg
from services.cli.output import emit_table, errors, fail
from services.cli.projector_cmd import cmd_projector
from services.config import Settings
from services.rebuild import VerifyReport, rebuild, verify

JOB_COLUMNS = ("id", "type", "status", "attempt", "workerId", "updatedAt", "detail")


def register(commands: Any) -> None:
    p = commands.add_parser("projector", help="fold the event log into the read model (daemon)")
    p.add_argument("--batch", type=int, default=1000, help="events per transaction at most")
    p.set_defaults(handler=cmd_projector)

    r = commands.add_parser("rebuild", help="rebuild the read model from seq 1 and swap it in")
    r.add_argument("--projection", choices=sorted(_projections()), help="only this projection")
    r.add_argument(
        "--json", action="store_true", help="the summary as JSON (progress stays on stderr)"
    )
    r.set_defaults(handler=cmd_rebuild)

    v = commands.add_parser("verify", help="compare the read model with a fresh rebuild")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(handler=cmd_verify)

    j = commands.add_parser("jobs", help="list jobs from the read model")
    j.add_argument(
        "--status",
        choices=[
            "scheduled",
            "dispatched",
            "received",
            "running",
            "waiting",
            "retrying",
            "completed",
            "failed",
            "cancelled",
        ],
    )
    j.add_argument("--type", choices=["agent", "command", "http"])
    j.add_argument(
        "--label",
        action="append",
        default=[],
        type=label_arg,
        metavar="KEY=VALUE",
        help="only jobs with this label (repeatable: all must hold)",
    )
    j.add_argument("--limit", type=_positive, default=50)
    j.add_argument("--cursor", type=int, help="`next` of the previous page")
    j.add_argument("--as-of", type=_as_of, metavar="SEQ|TIME", help="the jobs as they were then")
    j.add_argument("--json", action="store_true")
    j.set_defaults(handler=cmd_jobs)

    one = commands.add_parser("job", help="one job's read-model row")
    one.add_argument("id")
    one.add_argument("--json", action="store_true")
    one.set_defaults(handler=cmd_job)


def _projections() -> list[str]:
    from projections.schema import PROJECTIONS  # noqa: PLC0415 - keep import light for --help

    return list(PROJECTIONS)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _as_of(text: str) -> int | datetime:
    if text.isascii() and text.isdigit():
        return min(int(text), 2**63 - 1)
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a sequence number nor an ISO-8601 time"
        ) from None


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with runtime(settings, settings.nats_url_for("reader"), "baker-rebuild") as rt:
            with _bar() as bar:
                task = bar.add_task("rebuild", total=None, rate="")

                def progress(seq: int, head: int, rate: float) -> None:
                    bar.update(task, completed=seq, total=head, rate=f"{rate:,.0f} events/s")

                store = read_model_store(settings)
                try:
                    result = await rebuild(
                        rt.store, store, projection=args.projection, progress=progress
                    )
                except SequenceGap as exc:
                    return fail(f"{exc}; nothing was swapped in", 3)
                finally:
                    await store.close()
        if args.json:
            print(orjson.dumps(result.summary(args.projection)).decode())
            return 0
        print(f"rebuilt {result.generation} up to seq {result.last_seq} in {result.seconds:.1f}s")
        if result.removed:
            print(f"removed superseded {', '.join(result.removed)}")
        return 0

    return run_async(go())


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=errors,
    )  # fmt: skip


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        store = read_model_store(settings)
        try:
            if await store.current() is None:
                return fail(f"no read model at {store.label}", 2)
            async with runtime(settings, settings.nats_url_for("reader"), "baker-verify") as rt:
                report = await verify(rt.store, store)
        finally:
            await store.close()
        _print_report(report, args.json)
        return 0 if report.ok else 1

    return run_async(go())


def _print_report(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        diffs = [d.__dict__ for d in report.diffs]
        print(
            orjson.dumps(
                {
                    "ok": report.ok,
                    "checkpoint": report.checkpoint,
                    "tables": report.tables,
                    "diffs": diffs,
                },
                default=str,
            ).decode()
        )
        return
    emit_table(
        f"verify at seq {report.checkpoint}",
        ("table", "matches"),
        [(t, "yes" if ok else "NO") for t, ok in report.tables.items()],
    )
    for d in report.diffs:
        print(f"drift in {d.table}: {d.live_rows} live rows, {d.shadow_rows} rebuilt")
        for key in d.only_live:
            print(f"  only in live: {key}")
        for key in d.only_shadow:
            print(f"  missing from live: {key}")
        for row in d.different:
            print(f"  differs {row['key']}: {row['columns']}")
    print(
        "read model matches the event log"
        if report.ok
        else "DRIFT: the read model differs from the event log"
    )


@asynccontextmanager
async def _read_model(settings: Settings) -> AsyncIterator[ReadDb | None]:
    """The read model's current generation, or None (said on stderr) when there is none."""
    store: ReadModelStore = read_model_store(settings)
    try:
        if await store.current() is None:
            fail(f"no read model at {store.label}: start `baker projector` or `baker up` first", 2)
            yield None
            return
        reader = store.reader()
        try:
            yield await reader.db()
        finally:
            await reader.close()
    finally:
        await store.close()


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with _read_model(settings) as db:
            if db is None:
                return 2
            if args.as_of is not None:
                seq = args.as_of if isinstance(args.as_of, int) else await seq_at(db, args.as_of)
                rows = await jobs_as_of(db, seq)
                ordered = sorted(rows.values(), key=lambda r: r["dispatched_seq"], reverse=True)
                picked = [
                    r
                    for r in ordered
                    if (args.status in (None, r["status"]))
                    and (args.type in (None, r["type"]))
                    and queries.has_labels(r, args.label)
                ]
                docs, title = (
                    [queries.job_document(r) for r in picked[: args.limit]],
                    f"jobs as of seq {seq}",
                )
                nxt = None
            else:
                page = await queries.list_jobs(
                    db,
                    queries.JobFilter(
                        args.status, args.type, args.limit, args.cursor, tuple(args.label)
                    ),
                )
                docs, title, nxt = page.jobs, "jobs", page.next
        if args.json:
            print(orjson.dumps({"jobs": docs, "next": nxt}).decode())
        else:
            emit_table(title, JOB_COLUMNS, [_job_line(d) for d in docs])
            if nxt is not None:
                print(f"more: --cursor {nxt}")
        return 0

    return run_async(go())


def _job_line(doc: dict[str, Any]) -> tuple[Any, ...]:
    detail = doc.get("error") or doc.get("progress") or doc.get("waitReason") or ""
    if not detail and isinstance(doc.get("result"), dict):
        detail = orjson.dumps(doc["result"]).decode()[:60]
    return (
        doc["id"],
        doc["type"],
        doc["status"],
        doc["attempt"],
        doc.get("workerId") or "",
        doc["updatedAt"],
        str(detail)[:60],
    )


def cmd_job(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with _read_model(settings) as db:
            if db is None:
                return 2
            doc = await queries.get_job(db, args.id)
        if doc is None:
            return fail(f"no job {args.id!r} in the read model", 1)
        if args.json:
            print(orjson.dumps(doc).decode())
        else:
            emit_table(f"job {args.id}", ("field", "value"), [(k, v) for k, v in doc.items()])
        return 0

    return run_async(go())
