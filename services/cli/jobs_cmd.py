"""`baker dispatch`, `cancel`, `history`, `tail`.

Dispatching and cancelling go through the Brain's HTTP API (`BAKER_API_URL`, the bearer token
from `BAKER_API_TOKEN`); `history` and `tail` read the event log directly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from adapters.eventstore import StoredEvent
from domain.events import event_types, to_document
from services.bootstrap import runtime
from services.cli.app_support import (
    CliError,
    answer_document,
    api_client,
    api_json,
    checked_id,
    refused,
    run_async,
)
from services.cli.dispatch_file import cmd_dispatch_file, label_arg
from services.cli.live_output import OutputPrinter
from services.cli.output import emit_table, event_cells, timeline_line, usage_error
from services.cli.timing_args import add_timing_args, timing_fields
from services.config import Settings

AGGREGATES = ["job", "task", "extension", "service", "brain", "handoff", "schedule", "queue"]


def register(commands: Any) -> None:
    d = commands.add_parser("dispatch", help="dispatch a job through the Brain API")
    d.add_argument(
        "--from-file",
        metavar="JOBS.JSONL",
        help="dispatch every job spec of a file ({type, payload, ...} per line; - for stdin)",
    )
    d.add_argument("--json", action="store_true", help="with --from-file: {ids} as JSON")
    d.set_defaults(handler=cmd_dispatch_file)
    kinds = d.add_subparsers(dest="kind", metavar="TYPE")
    c = kinds.add_parser("command", help="run an allowed command (no shell)")
    c.add_argument("command", help='e.g. "df -h"')
    h = kinds.add_parser("http", help="make an HTTP request")
    h.add_argument("url")
    h.add_argument("--method", default="GET")
    h.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    h.add_argument("--data", help="JSON body", type=_json_arg)
    a = kinds.add_parser("agent", help="give Claude a task with the command and http tools")
    a.add_argument("prompt")
    a.add_argument("--model")
    a.add_argument("--max-tokens", type=int)
    a.add_argument("--system")
    a.add_argument(
        "--approve",
        action="append",
        choices=["command", "http"],
        metavar="TOOL",
        help="a tool whose calls wait for `baker approve` (repeatable)",
    )
    a.add_argument("--max-total-tokens", type=int, help="budget: fail before passing it")
    a.add_argument("--max-cost-usd", type=float, help="budget in US dollars")
    for sub in (c, h, a):
        sub.add_argument("--timeout", type=int, help="timeoutSeconds of the job")
        add_timing_args(sub)
        sub.add_argument(
            "--priority", choices=["high", "normal", "low"], help="its lane (default: normal)"
        )
        sub.add_argument(
            "--wait", action="store_true", help="follow the job live; exit 1 if it fails"
        )
        sub.add_argument("--json", action="store_true")
        sub.add_argument(
            "--label", action="append", default=[], type=label_arg, metavar="KEY=VALUE",
            help="a label of the job (repeatable)",
        )  # fmt: skip
        sub.add_argument(
            "--idempotency-key", metavar="KEY",
            help="a repeat with this key within BAKER_IDEMPOTENCY_TTL answers the first job",
        )  # fmt: skip
        sub.set_defaults(handler=cmd_dispatch)

    cancel = commands.add_parser("cancel", help="cancel a job")
    cancel.add_argument("id")
    cancel.set_defaults(handler=cmd_cancel)

    hist = commands.add_parser("history", help="a job's whole history from the event log")
    hist.add_argument("id")
    fmt = hist.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON document")
    fmt.add_argument("--jsonl", action="store_true", help="one event per line (export)")
    hist.set_defaults(handler=cmd_history)

    tail = commands.add_parser("tail", help="follow every new event live")
    tail.add_argument("--aggregate", choices=AGGREGATES)
    tail.add_argument("--type", help="event type, e.g. JobFailed")
    tail.add_argument("--id", help="one aggregate id")
    tail.add_argument(
        "--from", dest="from_seq", type=_sequence, help="start at this sequence (default: now)"
    )
    tail.add_argument("--json", action="store_true", help="one JSON document per line")
    tail.set_defaults(handler=cmd_tail)


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


def _sequence(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a stream sequence (1 or more)")
    return int(text)


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    if args.kind == "command":
        return {"command": args.command}
    if args.kind == "http":
        headers = {}
        for item in args.header:
            name, sep, value = item.partition(":")
            if not sep or not name.strip():
                usage_error(f"baker dispatch http: --header {item!r} is not NAME:VALUE")
            headers[name.strip()] = value.strip()
        doc: dict[str, Any] = {"url": args.url, "method": args.method, "headers": headers}
        if args.data is not None:
            doc["json"] = args.data
        return doc
    doc = {"prompt": args.prompt}
    for key, value in (
        ("model", args.model),
        ("maxTokens", args.max_tokens),
        ("system", args.system),
        ("approve", args.approve or None),
    ):
        if value is not None:
            doc[key] = value
    budget = {"maxTotalTokens": args.max_total_tokens, "maxCostUsd": args.max_cost_usd}
    if any(v is not None for v in budget.values()):
        doc["budget"] = {k: v for k, v in budget.items() if v is not None}
    return doc


def cmd_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.from_file is not None:
        usage_error("baker dispatch: --from-file or a job TYPE, not both")
    body: dict[str, Any] = {"type": args.kind, "payload": _payload(args)}
    if args.timeout is not None:
        body["timeoutSeconds"] = args.timeout
    if args.label:
        body["labels"] = dict(args.label)
    if args.idempotency_key is not None:
        body["idempotencyKey"] = args.idempotency_key
    if args.priority is not None:
        body["priority"] = args.priority
    body.update(timing_fields(args))

    async def go() -> int:
        async with api_client(settings) as client:
            status, doc = await api_json(client, settings, "POST", "/api/jobs", json=body)
            if status not in (200, 202):  # 200: a repeat of the idempotency key
                raise refused(status, doc)
            job_id = checked_id(str(doc.get("id")), "the API's job id")
            if not args.wait:
                word = doc.get("status", "dispatched")  # "scheduled": a delayed job
                said = f"{word} {job_id}" if status == 202 else f"{job_id} (already dispatched)"
                print(orjson.dumps(doc).decode() if args.json else said)
                return 0
            print(f"dispatched {job_id}; following it", file=sys.stderr)
            return await _follow(client, settings, job_id, args.json)

    return run_async(go())


async def _follow(client: httpx.AsyncClient, settings: Settings, job_id: str, as_json: bool) -> int:
    status = "unknown"
    printer = OutputPrinter(as_json)
    try:
        async with client.stream("GET", f"/api/jobs/{job_id}/stream", timeout=None) as stream:
            if stream.status_code != 200:
                await stream.aread()
                raise refused(stream.status_code, answer_document(stream, settings))
            async for event, data in _sse(stream.aiter_lines()):
                if event == "end":
                    status = data.get("status", status)
                    break
                if event == "output":
                    printer.output(data)
                    continue
                printer.line(orjson.dumps(data).decode() if as_json else timeline_line(data))
    except httpx.HTTPError as exc:
        printer.end()
        raise CliError(
            f"lost the live stream of {job_id} from the Brain API at {settings.api_url}:"
            f" {exc or type(exc).__name__}; `baker history {job_id}` shows what happened"
        ) from None
    printer.end()
    print(f"{job_id}: {status}", file=sys.stderr)
    return 0 if status == "completed" else 1


async def _sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    event, data = "message", ""
    async for line in lines:
        if not line:
            if data:
                yield event, _frame(event, data)
            event, data = "message", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def _frame(event: str, data: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise CliError(f"the API sent a {event} event that is not a JSON object: {data[:80]!r}")
    return doc


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    job_id = checked_id(args.id, "id")

    async def go() -> int:
        async with api_client(settings) as client:
            status, doc = await api_json(client, settings, "POST", f"/api/jobs/{job_id}/cancel")
        if status != 202:
            raise refused(status, doc)
        print(f"cancel requested for {job_id}")
        return 0

    return run_async(go())


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    job_id = checked_id(args.id, "id")

    async def go() -> int:
        async with runtime(settings, settings.nats_url_for("reader"), "baker-cli") as rt:
            history = await rt.store.load("job", job_id)
        if not history.exists:
            raise CliError(f"no job {job_id!r} in the event log")
        docs = [{"seq": e.seq, **to_document(e.envelope)} for e in history.events]
        if args.jsonl:
            for doc in docs:
                print(orjson.dumps(doc).decode())
        elif args.json:
            whole = {"id": job_id, "status": history.state.status, "events": docs}
            print(orjson.dumps(whole).decode())
        else:
            emit_table(
                f"{job_id}: {history.state.status}",
                ("time", "event", "attempt", "worker", "detail"),
                [event_cells(d) for d in docs],
            )
        for bad in history.bad:
            print(f"unreadable event at seq {bad.seq}: {bad.error}", file=sys.stderr)
        return 0

    return run_async(go())


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    if args.id is not None:
        checked_id(args.id, "--id")
    if args.type is not None and args.type not in event_types():
        usage_error(f"baker tail: --type {args.type!r} is not an event type, e.g. JobFailed")

    async def go() -> int:
        async with runtime(settings, settings.nats_url_for("reader"), "baker-cli") as rt:
            start = args.from_seq or (await rt.store.head_seq() + 1)
            print(f"following events from seq {start} (Ctrl-C stops)", file=sys.stderr)
            async for batch in rt.store.tail_batches(start, idle=1.0):
                for item in batch:
                    if isinstance(item, StoredEvent) and _wanted(item, args):
                        doc = {"seq": item.seq, **to_document(item.envelope)}
                        line = orjson.dumps(doc).decode() if args.json else _tail_line(doc)
                        print(line, flush=True)
        return 0

    return run_async(go())


def _wanted(item: StoredEvent, args: argparse.Namespace) -> bool:
    env = item.envelope
    return (
        (args.aggregate is None or env.aggregate == args.aggregate)
        and (args.type is None or env.type == args.type)
        and (args.id is None or env.aggregate_id == args.id)
    )


def _tail_line(doc: dict[str, Any]) -> str:
    return f"{doc['seq']:>8}  {doc['aggregate']:<9} {doc['aggregateId']:<24} {timeline_line(doc)}"
