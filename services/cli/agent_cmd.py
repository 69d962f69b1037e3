"""`baker approve`, `baker fork`, `baker rerun`: an agent job's control through the Brain's
HTTP API (DESIGN §10)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.cli.app_support import api_client, api_json, checked_id, refused, run_async
from services.cli.output import emit_table
from services.config import Settings


def register(commands: Any) -> None:
    a = commands.add_parser("approve", help="approve (or --deny) the tool call a job waits for")
    a.add_argument("id")
    a.add_argument("--deny", action="store_true", help="refuse it: the model is told so")
    a.add_argument("--note", help="why; a denial quotes it to the model")
    a.add_argument("--tool-use-id", help="the call to answer (default: the one it waits for)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_approve)

    f = commands.add_parser("fork", help="a new agent job from a job's steps up to --from-step")
    f.add_argument("id")
    f.add_argument("--from-step", type=int, required=True, help="the last step to keep")
    f.add_argument("--model")
    f.add_argument("--prompt")
    f.add_argument("--system")
    f.add_argument("--json", action="store_true")
    f.set_defaults(handler=cmd_fork)

    r = commands.add_parser("rerun", help="run a job's spec again as a new job")
    r.add_argument("id")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=cmd_rerun)


def cmd_approve(args: argparse.Namespace, settings: Settings) -> int:
    job_id = checked_id(args.id, "id")
    body: dict[str, Any] = {"approve": not args.deny}
    if args.note:
        body["note"] = args.note
    if args.tool_use_id:
        body["toolUseId"] = args.tool_use_id
    return _post(settings, f"/api/jobs/{job_id}/approve", body, args.json, _answered)


def cmd_fork(args: argparse.Namespace, settings: Settings) -> int:
    job_id = checked_id(args.id, "id")
    body: dict[str, Any] = {"fromStep": args.from_step}
    for key in ("model", "prompt", "system"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    return _post(settings, f"/api/jobs/{job_id}/fork", body, args.json, _started)


def cmd_rerun(args: argparse.Namespace, settings: Settings) -> int:
    job_id = checked_id(args.id, "id")
    return _post(settings, f"/api/jobs/{job_id}/rerun", None, args.json, _started)


def _answered(doc: dict[str, Any]) -> list[list[str]]:
    verb = "approved" if doc.get("approved") else "denied"
    queued = "queued again" if doc.get("queued") else "not queued yet (the Brain retries)"
    return [[str(doc.get("id")), str(doc.get("toolUseId")), verb, queued]]


def _started(doc: dict[str, Any]) -> list[list[str]]:
    fork = doc.get("forkOf") or {}
    source = (
        f"fork of {fork.get('jobId')} step {fork.get('step')}"
        if fork
        else (f"rerun of {doc.get('rerunOf')}")
    )
    return [[str(doc.get("id")), str(doc.get("status")), source]]


_HEADERS = {_answered: ("approval", ["JOB", "TOOL USE", "ANSWER", "QUEUE"]),
            _started: ("new job", ["JOB", "STATUS", "FROM"])}  # fmt: skip


def _post(
    settings: Settings, path: str, body: dict[str, Any] | None, as_json: bool, rows: Any
) -> int:
    async def go() -> int:
        async with api_client(settings) as client:
            status, doc = await api_json(client, settings, "POST", path, json=body)
        if status != 202:
            raise refused(status, doc)
        if as_json:
            print(json.dumps(doc))
        else:
            title, columns = _HEADERS[rows]
            emit_table(title, columns, rows(doc))
        return 0

    return run_async(go())
