"""`baker dispatch --from-file jobs.jsonl`: one job spec per line, through the batch endpoint;
and the `--label KEY=VALUE` argument shared by `baker dispatch` and `baker jobs`.

Every line is validated here first (the same rules as the API), so a bad line is named
(`line 3: payload.command: ...`) and nothing is sent. Lines go in batches of 1,000
(`POST /api/jobs/batch`); the ids are printed in the order of the lines.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, TextIO

import orjson

from domain.errors import FieldError
from domain.labels import parse_filter
from domain.specs import parse_job_spec
from services.brain.batch import MAX_BATCH
from services.cli.app_support import CliError, api_client, api_json, refused, run_async
from services.config import Settings

_INDEX = re.compile(r"^jobs\[(\d+)\]")


def label_arg(text: str) -> tuple[str, str]:
    """argparse type of `--label KEY=VALUE`."""
    try:
        return parse_filter(text, "=", "--label")
    except FieldError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def read_specs(lines: TextIO, name: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, spec document) of every non-blank line, each validated; `CliError`
    (exit 2) naming the first bad line."""
    specs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise CliError(f"{name}: line {number}: not valid JSON ({exc})", 2) from None
        try:
            spec = parse_job_spec(doc)
        except FieldError as exc:
            raise CliError(f"{name}: line {number}: {exc}", 2) from None
        if spec.idempotency_key is not None:
            raise CliError(f"{name}: line {number}: idempotencyKey is not taken in a batch", 2)
        specs.append((number, doc))
    if not specs:
        raise CliError(f"{name}: no job specs in it", 2)
    return specs


def _open(path: str) -> tuple[TextIO, str]:
    if path == "-":
        return sys.stdin, "stdin"
    try:
        return Path(path).open(encoding="utf-8"), path
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", 2) from None


def cmd_dispatch_file(args: argparse.Namespace, settings: Settings) -> int:
    if args.from_file is None:
        raise CliError("baker dispatch: name a job TYPE (command, http, agent) or --from-file", 2)
    stream, name = _open(args.from_file)
    with stream:
        specs = read_specs(stream, name)

    async def go() -> int:
        ids: list[str] = []
        async with api_client(settings, timeout=120.0) as client:
            for start in range(0, len(specs), MAX_BATCH):
                chunk = specs[start : start + MAX_BATCH]
                body = {"jobs": [doc for _, doc in chunk]}
                status, doc = await api_json(client, settings, "POST", "/api/jobs/batch", json=body)
                if status != 202:
                    if ids:
                        print(f"dispatched {len(ids)} jobs before the refusal:", file=sys.stderr)
                        print("\n".join(ids))
                    raise _refused_line(status, doc, name, [n for n, _ in chunk])
                ids += [str(i) for i in doc.get("ids", [])]
        if args.json:
            print(orjson.dumps({"ids": ids}).decode())
        else:
            print("\n".join(ids))
            print(f"dispatched {len(ids)} jobs from {name}", file=sys.stderr)
        return 0

    return run_async(go())


def _refused_line(status: int, doc: dict[str, Any], name: str, lines: list[int]) -> CliError:
    """The API's refusal, naming the file's line rather than the batch index."""
    found = _INDEX.match(str(doc.get("field", "")))
    if status == 400 and found and int(found.group(1)) < len(lines):
        line = lines[int(found.group(1))]
        detail = str(doc.get("error", "")).partition(": ")[2]
        field = str(doc["field"])[found.end() :].lstrip(".") or "job"
        return CliError(f"{name}: line {line}: {field}: {detail}", 2)
    return refused(status, doc)
