"""`baker dispatch`, `cancel`, `history`, `tail`, `extensions`, `health`, `handoff`.

Dispatching and the system views go through the Brain's HTTP API (`BAKER_API_URL`, the
bearer token from `BAKER_API_TOKEN`); `history` and `tail` read the event log directly.
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
from domain.events import to_document
from services.bootstrap import runtime
from services.cli.app_support import run_async
from services.cli.output import emit_table, fail, usage_error
from services.config import Settings

TERMINAL = {"completed", "failed", "cancelled"}


def register(commands: Any) -> None:
    d = commands.add_parser("dispatch", help="dispatch a job through the Brain API")
    kinds = d.add_subparsers(dest="kind", metavar="TYPE", required=True)
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
    for sub in (c, h, a):
        sub.add_argument("--timeout", type=int, help="timeoutSeconds of the job")
        sub.add_argument(
            "--wait", action="store_true", help="follow the job live; exit 1 if it fails"
        )
        sub.add_argument("--json", action="store_true")
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
    tail.add_argument(
        "--aggregate", choices=["job", "task", "extension", "service", "brain", "handoff"]
    )
    tail.add_argument("--type", help="event type, e.g. JobFailed")
    tail.add_argument("--id", help="one aggregate id")
    tail.add_argument(
        "--from", dest="from_seq", type=int, help="start at this sequence (default: now)"
    )
    tail.add_argument("--json", action="store_true", help="one JSON document per line")
    tail.set_defaults(handler=cmd_tail)

    for name, path, title in (
        ("extensions", "/api/extensions", "registered extensions"),
        ("health", "/api/system/health", "service health"),
        ("handoff", "/api/system/handoff", "Brain handoff"),
    ):
        view = commands.add_parser(name, help=title)
        view.add_argument("--json", action="store_true")
        view.set_defaults(handler=cmd_view, path=path, title=title)


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


def api_client(settings: Settings, timeout: float | None = 30.0) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    return httpx.AsyncClient(base_url=settings.api_url, headers=headers, timeout=timeout)


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
    ):
        if value is not None:
            doc[key] = value
    return doc


def cmd_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    body: dict[str, Any] = {"type": args.kind, "payload": _payload(args)}
    if args.timeout is not None:
        body["timeoutSeconds"] = args.timeout

    async def go() -> int:
        async with api_client(settings) as client:
            answer = await client.post("/api/jobs", json=body)
            doc = answer.json()
            if answer.status_code != 202:
                return fail(
                    f"{answer.status_code}: {doc.get('error')}",
                    2 if answer.status_code == 400 else 1,
                )
            if not args.wait:
                print(orjson.dumps(doc).decode() if args.json else f"dispatched {doc['id']}")
                return 0
            print(f"dispatched {doc['id']}; following it", file=sys.stderr)
            return await _follow(client, doc["id"], args.json)

    return run_async(go())


async def _follow(client: httpx.AsyncClient, job_id: str, as_json: bool) -> int:
    status = "unknown"
    async with client.stream("GET", f"/api/jobs/{job_id}/stream", timeout=None) as stream:
        async for event, data in _sse(stream.aiter_lines()):
            if event == "end":
                status = data.get("status", status)
                break
            print(orjson.dumps(data).decode() if as_json else timeline_line(data), flush=True)
    print(f"{job_id}: {status}", file=sys.stderr)
    return 0 if status == "completed" else 1


async def _sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    event, data = "message", ""
    async for line in lines:
        if not line:
            if data:
                yield event, json.loads(data)
            event, data = "message", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with api_client(settings) as client:
            answer = await client.post(f"/api/jobs/{args.id}/cancel")
        if answer.status_code != 202:
            return fail(f"{answer.status_code}: {answer.json().get('error')}")
        print(f"cancel requested for {args.id}")
        return 0

    return run_async(go())


def describe(doc: dict[str, Any]) -> str:
    """A short human detail for one event document."""
    data = doc.get("data", {})
    kind = doc.get("type", "")
    if kind == "TransitionRejected":
        return f"REJECTED {data.get('attempted')} in {data.get('fromState')}: {data.get('reason')}"
    if kind == "JobDispatched":
        return f"{data.get('jobType')} {orjson.dumps(data.get('payload')).decode()[:70]}"
    for key in ("error", "progress", "detail", "reason"):
        if data.get(key):
            return str(data[key])[:90]
    if data.get("result") is not None:
        return orjson.dumps(data["result"]).decode()[:90]
    return ""


def timeline_line(doc: dict[str, Any]) -> str:
    data = doc.get("data", {})
    when = str(doc.get("occurredAt", ""))[11:23]
    attempt = data.get("attempt") or ""
    worker = data.get("workerId") or ""
    return f"{when}  {doc.get('type', ''):<20} {attempt!s:>2}  {worker:<16} {describe(doc)}"


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with runtime(settings, settings.nats_url_or_default, "baker-cli") as rt:
            history = await rt.store.load("job", args.id)
        if not history.exists:
            return fail(f"no job {args.id!r} in the event log")
        docs = [{"seq": e.seq, **to_document(e.envelope)} for e in history.events]
        if args.jsonl:
            for doc in docs:
                print(orjson.dumps(doc).decode())
        elif args.json:
            print(
                orjson.dumps(
                    {"id": args.id, "status": history.state.status, "events": docs}
                ).decode()
            )
        else:
            emit_table(
                f"{args.id}: {history.state.status}",
                ("time", "event", "attempt", "worker", "detail"),
                [
                    (
                        str(d["occurredAt"])[11:23],
                        d["type"],
                        d["data"].get("attempt") or "",
                        d["data"].get("workerId") or "",
                        describe(d),
                    )
                    for d in docs
                ],
            )
        for bad in history.bad:
            print(f"unreadable event at seq {bad.seq}: {bad.error}", file=sys.stderr)
        return 0

    return run_async(go())


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with runtime(settings, settings.nats_url_or_default, "baker-cli") as rt:
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


def cmd_view(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with api_client(settings) as client:
            try:
                answer = await client.get(args.path)
            except httpx.HTTPError as exc:
                return fail(f"cannot reach the Brain API at {settings.api_url}: {exc}")
        doc = answer.json()
        if answer.status_code != 200:
            return fail(f"{answer.status_code}: {doc.get('error')}")
        if args.json:
            print(orjson.dumps(doc).decode())
        else:
            _render_view(args.title, doc)
        return 0

    return run_async(go())


def _render_view(title: str, doc: dict[str, Any]) -> None:
    if "extensions" in doc:
        rows = [
            (
                e["id"],
                e["name"],
                e["version"],
                e["status"],
                len(e.get("tools") or []),
                e.get("changedAt"),
            )
            for e in doc["extensions"]
        ]
        emit_table(title, ("id", "name", "version", "status", "tools", "since"), rows)
    elif "services" in doc:
        rows = [
            (s["service"], s["instance"], s["status"], s.get("since"), s.get("lastSeen") or "")
            for s in doc["services"]
        ]
        emit_table(title, ("service", "instance", "status", "since", "last seen"), rows)
        checks = [
            (name, c.get("status"), {k: v for k, v in c.items() if k != "status"})
            for name, c in doc["checks"].items()
        ]
        emit_table("checks", ("check", "status", "detail"), checks)
    else:
        active = doc.get("active") or {}
        print(
            f"active brain: {active.get('instance', 'none')}  generation: {doc.get('generation')}"
        )
        if doc.get("inProgress"):
            print(f"handoff in progress: {doc['inProgress']}")
        rows = [
            (
                h["id"],
                h["status"],
                h.get("fromInstance"),
                h.get("toInstance"),
                h.get("generation"),
                h.get("requestedAt"),
            )
            for h in doc.get("history", [])
        ]
        emit_table("handoffs", ("id", "status", "from", "to", "generation", "requested"), rows)
