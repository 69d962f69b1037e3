"""`baker queue [pause|resume]`: the queue's state and lanes, and pausing it (DESIGN §11),
through the Brain's HTTP API."""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.cli.app_support import api_client, api_json, refused, run_async
from services.cli.output import emit_table
from services.config import Settings


def register(commands: Any) -> None:
    q = commands.add_parser("queue", help="the queue's state and lanes; pause or resume it")
    q.add_argument(
        "action",
        nargs="?",
        choices=["pause", "resume"],
        help="pause: workers take nothing new (running jobs finish); resume",
    )
    q.add_argument("--reason", help="why (kept in the queue's events)")
    q.add_argument("--by", help="who (default: the API's `api`)")
    q.add_argument("--json", action="store_true", help="the API's JSON document")
    q.set_defaults(handler=cmd_queue)


def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        async with api_client(settings) as client:
            if args.action is not None:
                body = {k: v for k, v in (("by", args.by), ("reason", args.reason)) if v}
                path = f"/api/queue/{args.action}"
                status, doc = await api_json(client, settings, "POST", path, json=body)
                if status != 202:
                    raise refused(status, doc)
                if args.json:
                    print(json.dumps(doc))
                    return 0
                done = "" if doc.get("changed") else " (it was already)"
                print(f"queue {doc.get('state')}{done}")
                return 0
            status, doc = await api_json(client, settings, "GET", "/api/queue")
        if status != 200:
            raise refused(status, doc)
        if args.json:
            print(json.dumps(doc))
            return 0
        _show(doc)
        return 0

    return run_async(go())


def _show(doc: dict[str, Any]) -> None:
    state = str(doc.get("state"))
    if doc.get("paused"):
        who = f" by {doc['by']}" if doc.get("by") else ""
        why = f": {doc['reason']}" if doc.get("reason") else ""
        state = f"paused since {doc.get('since')}{who}{why}"
    rows = [
        [lane, str(s.get("queued")), str(s.get("inFlight")), "yes" if s.get("paused") else "no"]
        for lane, s in (doc.get("lanes") or {}).items()
    ]
    print(f"queue {state}")  # a line of its own: a table title would wrap
    emit_table("lanes", ["LANE", "QUEUED", "IN FLIGHT", "PAUSED"], rows)
