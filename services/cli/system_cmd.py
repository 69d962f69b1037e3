"""`baker up` and `baker provision`."""

from __future__ import annotations

import argparse
from typing import Any

from adapters.nats.connection import connect
from adapters.nats.streams import ProvisioningError, provision
from services.bootstrap import topology
from services.cli.app_support import run_async
from services.cli.output import emit_table, fail, usage_error
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

    prov = commands.add_parser("provision", help="create the streams and consumers if missing")
    prov.add_argument("--json", action="store_true", help="machine-readable output")
    prov.set_defaults(handler=cmd_provision)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers < 0:
        usage_error("baker up: --workers must be 0 or more")
    return run_async(run_up(settings, UpOptions(nats_port=args.nats_port, workers=args.workers)))


def cmd_provision(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        nc = await connect(settings.nats(settings.nats_url_or_default, "baker-cli"))
        try:
            done = await provision(nc.jsm(), topology(settings))
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
