"""`baker brain`, `worker`, `monitor`, `launcher` and `api`: the daemons."""

from __future__ import annotations

import argparse
from typing import Any

from services.bootstrap.daemons import (
    run_api,
    run_brain,
    run_monitor,
    run_task_launcher,
    run_worker,
)
from services.bootstrap.settings import checked_command_sandbox
from services.cli.app_support import run_async
from services.cli.output import usage_error
from services.config import Settings


def register(commands: Any) -> None:
    brain = commands.add_parser(
        "brain", help="run the Brain: API, dispatch, ingest, watchdogs, its read model"
    )
    brain.add_argument(
        "--role", choices=["active", "pending"],
        help="pending: ask the active Brain to hand over (default BAKER_BRAIN_ROLE or active)",
    )  # fmt: skip
    brain.set_defaults(handler=lambda a, s: run_async(run_brain(s, a.role or s.brain_role)))
    monitor = commands.add_parser(
        "monitor", help="run the extensions registry and the service health monitor"
    )
    monitor.set_defaults(handler=lambda _a, s: run_async(run_monitor(s)))
    launcher = commands.add_parser(
        "launcher", help="run the task launcher (BAKER_TASK_LAUNCHER: local or kubernetes)"
    )
    launcher.set_defaults(handler=lambda _a, s: run_async(run_task_launcher(s)))
    worker = commands.add_parser("worker", help="run a worker of the `workers` queue group")
    worker.add_argument(
        "--concurrency", type=int, help="jobs at once (default BAKER_WORKER_CONCURRENCY)"
    )
    worker.set_defaults(handler=cmd_worker)
    api = commands.add_parser(
        "api",
        help="serve the read side of the HTTP API (GET routes, SSE, dashboard) over the shared "
        "read model; writes go to the Brain (BAKER_BRAIN_URL)",
    )
    api.add_argument("--port", type=int, help="port to listen on (default BAKER_API_PORT)")
    api.set_defaults(handler=lambda a, s: run_async(run_api(s, a.port)))


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if args.concurrency is not None and args.concurrency < 1:
        usage_error("baker worker: --concurrency must be at least 1")
    checked_command_sandbox(settings)  # a sandbox it cannot set up stops it before it connects
    return run_async(run_worker(settings, args.concurrency))
