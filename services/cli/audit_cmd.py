"""`baker audit export` and `baker audit verify`: the tamper-evident history (DESIGN §12).

`export` writes stored events as they are in the log, one JSON document a line, hashes
included; `verify` checks every aggregate's hash chain in such a file without any server, or in
the live stream (`--live`), and names the first event that breaks one (`domain.audit`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

import orjson

from adapters.eventstore import BadEvent, EventStore, StoredEvent
from domain.audit import Auditor, Break, Chain, Verdict, verify
from domain.events import CANONICAL
from services.bootstrap import runtime
from services.cli.app_support import CliError, checked_id, run_async
from services.cli.output import emit_table, fail, usage_error
from services.config import Settings

PROGRESS_EVERY = 10_000  # events between two progress lines on stderr
TABLE_CHAINS = 50  # intact chains listed one by one up to this many


def register(commands: Any) -> None:
    p = commands.add_parser(
        "audit",
        help="export the event log with its hashes, verify its hash chains",
        description="The tamper-evident history: every stored event carries `hash` (sha256 of "
        f"its canonical bytes, {CANONICAL}) and `prevHash` (its aggregate's previous event's).",
    )
    sub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    sub.required = True
    e = sub.add_parser(
        "export",
        help="write events with their hashes as JSON lines on stdout",
        description="Write the stored events of the given jobs (or of the whole log) on stdout, "
        "one stored document a line, in log order; progress goes to stderr.",
    )
    e.add_argument("ids", nargs="*", metavar="JOB_ID", help="the jobs to export")
    e.add_argument("--all", action="store_true", help="every event of every aggregate")
    e.set_defaults(handler=cmd_export)
    v = sub.add_parser(
        "verify",
        help="check every hash chain of an export (no server needed) or of the live log",
        description="Exit 0 when every aggregate's chain holds, else 1 naming the first event "
        "that breaks one and how (changed, missing, reordered or inserted).",
    )
    v.add_argument("file", nargs="?", metavar="FILE", help="an export (- for stdin)")
    v.add_argument("--live", action="store_true", help="check the event stream itself")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(handler=cmd_verify)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    if args.all == bool(args.ids):
        usage_error("baker audit export: give JOB_IDs or --all (one of the two)")
    ids = [checked_id(i, "JOB_ID") for i in args.ids]
    out = sys.stdout.buffer

    async def go() -> int:
        async with runtime(settings, settings.nats_url_or_default, "baker-cli") as rt:
            source = _whole_log(rt.store) if args.all else _jobs(rt.store, ids)
            written = 0
            async for raw in source:
                out.write(raw + b"\n")
                written += 1
                if written % PROGRESS_EVERY == 0:
                    print(f"exported {written:,} events", file=sys.stderr, flush=True)
        out.flush()
        print(f"exported {written:,} events", file=sys.stderr)
        return 0

    return run_async(go())


async def _jobs(store: EventStore, ids: list[str]) -> AsyncIterator[bytes]:
    for job_id in ids:
        history = await store.load("job", job_id)
        if not history.exists:
            raise CliError(f"no job {job_id!r} in the event log", 2)
        stored: list[StoredEvent | BadEvent] = [*history.events, *history.bad]
        for item in sorted(stored, key=lambda i: i.seq):
            raw = _exportable(item)
            if raw is not None:
                yield raw


async def _whole_log(store: EventStore) -> AsyncIterator[bytes]:
    async for item in store.read_all(include_bad=True):
        raw = _exportable(item)
        if raw is not None:
            yield raw


def _exportable(item: StoredEvent | BadEvent) -> bytes | None:
    """The stored bytes as they are; an unreadable message only if it is a JSON object (an
    event of a type or schema this version does not know is still part of its chain)."""
    if isinstance(item, StoredEvent):
        return item.raw or orjson.dumps({"error": "stored bytes not at hand"})
    try:
        if isinstance(orjson.loads(item.raw), dict) and b"\n" not in item.raw:
            return item.raw
    except orjson.JSONDecodeError:
        pass
    print(f"left out message {item.seq} ({item.subject}): {item.error}", file=sys.stderr)
    return None


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    if args.live == (args.file is not None):
        usage_error("baker audit verify: give FILE or --live (one of the two)")
    if not args.live:
        return _finish(_verify_file(args.file), "line", as_json=args.json)

    async def go() -> int:
        auditor = Auditor("seq")
        async with runtime(settings, settings.nats_url_or_default, "baker-cli") as rt:
            async for item in rt.store.read_all(include_bad=True):
                auditor.add(item.seq, item.raw)
        return _finish(auditor.verdict(), "seq", as_json=args.json)

    return run_async(go())


def _finish(verdict: Verdict, where: str, *, as_json: bool) -> int:
    """Print the verdict; 1 naming the first break, or 0."""
    _report(verdict, where, as_json=as_json)
    first = verdict.first_break
    return 0 if first is None else fail(describe(first, where))


def _verify_file(path: str) -> Verdict:
    try:
        stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", 2) from None
    with stream:
        return verify(_lines(stream))


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for n, line in enumerate(stream, start=1):
        if line.strip():
            yield n, line


def describe(b: Break, where: str) -> str:
    if not b.aggregate:
        return f"{where} {b.where}: {b.kind}: {b.detail}"
    version = f", version {b.version}" if b.version is not None else ""
    return (
        f"{where} {b.where}: event {b.event_id or '?'} ({b.aggregate} {b.aggregate_id}"
        f"{version}) {b.kind}: {b.detail}"
    )


def _report(verdict: Verdict, where: str, *, as_json: bool) -> None:
    first = verdict.first_break
    if as_json:
        print(
            orjson.dumps(
                {
                    "ok": verdict.ok,
                    "events": verdict.events,
                    "unhashed": verdict.unhashed,
                    "position": where,
                    "firstBreak": _break_doc(first),
                    "unreadable": [_break_doc(b) for b in verdict.unreadable],
                    "chains": [_chain_doc(c) for c in verdict.chains],
                }
            ).decode()
        )
        return
    shown = [c for c in verdict.chains if c.broken is not None or c.unhashed]
    if len(verdict.chains) <= TABLE_CHAINS:
        shown = verdict.chains
    emit_table(
        "hash chains",
        ("aggregate", "id", "events", "unhashed", "head", "verdict"),
        [
            (
                c.aggregate,
                c.aggregate_id,
                c.events,
                c.unhashed,
                c.head[:12],
                "holds" if c.broken is None else f"{c.broken.kind} at {where} {c.broken.where}",
            )
            for c in shown
        ],
    )
    if len(shown) < len(verdict.chains):
        print(f"({len(verdict.chains) - len(shown):,} more chains hold; --json lists them all)")
    state = "every chain holds" if verdict.ok else "a chain is broken"
    print(
        f"{verdict.events:,} events in {len(verdict.chains):,} chains "
        f"({verdict.unhashed:,} stored before hashing): {state}"
    )


def _break_doc(b: Break | None) -> dict[str, Any] | None:
    if b is None:
        return None
    return {
        "at": b.where,
        "eventId": b.event_id,
        "aggregate": b.aggregate,
        "aggregateId": b.aggregate_id,
        "version": b.version,
        "kind": b.kind,
        "detail": b.detail,
    }


def _chain_doc(c: Chain) -> dict[str, Any]:
    return {
        "aggregate": c.aggregate,
        "aggregateId": c.aggregate_id,
        "events": c.events,
        "unhashed": c.unhashed,
        "head": c.head,
        "broken": _break_doc(c.broken),
    }
