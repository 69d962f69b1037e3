"""`baker schedules` and `baker schedule add|pause|resume|rm` through the Brain's HTTP API
(DESIGN §11)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from services.cli.app_support import CliError, api_client, api_json, refused
from services.cli.output import emit_table
from services.config import Settings

COLUMNS = ["NAME", "STATUS", "WHEN", "TIMEZONE", "JOB", "FIRED", "NEXT SLOT"]
KEYS = ["name", "status", "when", "timezone", "job", "fired", "nextSlot"]


def register(commands: Any) -> None:
    ls = commands.add_parser("schedules", help="list the schedules")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)
    s = commands.add_parser("schedule", help="add, pause, resume or remove a schedule")
    verbs = s.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="a schedule dispatching a job per slot")
    add.add_argument("name")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='5 fields, e.g. "0 3 * * MON-FRI"')
    when.add_argument("--every", type=int, metavar="SECONDS", help="a slot every N seconds")
    add.add_argument("--timezone", help="IANA zone of the cron fields (default UTC)")
    job = add.add_mutually_exclusive_group(required=True)
    job.add_argument("--command", help='a command job, e.g. "df -h"')
    job.add_argument("--job", type=_json_object, help="a job spec as JSON {type, payload, ...}")
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=cmd_add)
    for verb in ("pause", "resume", "rm"):
        p = verbs.add_parser(verb, help=f"{verb} a schedule")
        p.add_argument("name")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=cmd_change)


def _json_object(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise argparse.ArgumentTypeError("must be a JSON object {type, payload, ...}")
    return doc


def _row(doc: dict[str, Any]) -> list[Any]:
    when = doc.get("cron") or f"every {doc.get('everySeconds')} s"
    job = doc.get("job") or {}
    what = f"{job.get('type')}: {json.dumps(job.get('payload'))}"
    return [doc.get("name"), doc.get("status"), when, doc.get("timezone"), what,
            doc.get("fired"), doc.get("nextSlot", "")]  # fmt: skip


def _call(settings: Settings, method: str, path: str, body: Any, ok: int) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with api_client(settings) as client:
            status, doc = await api_json(client, settings, method, path, json=body)
        if status != ok:
            raise refused(status, doc)
        return doc

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _show(docs: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print(json.dumps(docs if len(docs) != 1 else docs[0]))
        return 0
    emit_table("schedules", COLUMNS, [_row(d) for d in docs])
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    doc = _call(settings, "GET", "/api/schedules", None, 200)
    if args.json:
        print(json.dumps(doc["schedules"]))
        return 0
    emit_table("schedules", COLUMNS, [_row(d) for d in doc["schedules"]])
    return 0


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    job = args.job or {"type": "command", "payload": {"command": args.command}}
    body: dict[str, Any] = {"name": args.name, "job": job}
    if args.cron is not None:
        body["cron"] = args.cron
    else:
        body["everySeconds"] = args.every
    if args.timezone:
        body["timezone"] = args.timezone
    return _show([_call(settings, "POST", "/api/schedules", body, 201)], args.json)


def cmd_change(args: argparse.Namespace, settings: Settings) -> int:
    path = f"/api/schedules/{args.name}"
    if args.verb == "rm":
        doc = _call(settings, "DELETE", path, None, 200)
    elif args.verb in ("pause", "resume"):
        doc = _call(settings, "POST", f"{path}/{args.verb}", None, 200)
    else:
        raise CliError(f"unknown verb {args.verb}")
    return _show([doc], args.json)
