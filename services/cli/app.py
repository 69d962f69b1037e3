"""The `baker` command line: one sub-command per operator task (DESIGN §7)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from adapters.nats.connector import NatsUnavailable
from adapters.nats.server import NatsServerMissing, NatsServerTooOld
from adapters.nats.streams import ProvisioningError
from adapters.readmodel import ReadModelUnavailable
from domain.ids import InvalidId
from services.cli import (
    agent_cmd,
    audit_cmd,
    cluster_cmd,
    daemon_cmd,
    jobs_cmd,
    lifecycle_cmd,
    nats_cmd,
    queue_cmd,
    readmodel_cmd,
    schedule_cmd,
    system_cmd,
    usage_cmd,
)
from services.cli.app_support import CliError
from services.cli.output import fail
from services.config import ConfigError, Settings
from services.logs import setup_logging

Handler = Callable[[argparse.Namespace, Settings], int]
REGISTRARS = (
    system_cmd.register,
    daemon_cmd.register,
    jobs_cmd.register,
    agent_cmd.register,
    readmodel_cmd.register,
    lifecycle_cmd.register,
    usage_cmd.register,
    schedule_cmd.register,
    queue_cmd.register,
    audit_cmd.register,
    nats_cmd.register,
    cluster_cmd.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="baker",
        description="Baker Street jobs: event-sourced jobs and tasks on NATS JetStream.",
    )
    parser.add_argument("--log-format", choices=["text", "json"], help="override BAKER_LOG_FORMAT")
    parser.add_argument("--log-level", help="override BAKER_LOG_LEVEL (DEBUG, INFO, ...)")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log more on stderr: -v INFO, -vv DEBUG (commands other than daemons log only "
        "warnings and errors by default)",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for register in REGISTRARS:
        register(commands)
    return parser


DAEMONS = {"up", "brain", "worker", "projector", "monitor", "launcher", "api"}
"""Long-running commands: their INFO lines are their story. Every other command prints its own
output on stdout and logs only what went wrong (on stderr), unless asked for more."""


def log_level(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """`--log-level`, else `-v`/`-vv`, else `BAKER_LOG_LEVEL`, else INFO for daemons and
    WARNING for the rest."""
    if args.log_level:
        return str(args.log_level).upper()
    if args.verbose:
        return "DEBUG" if args.verbose > 1 else "INFO"
    if environ.get("BAKER_LOG_LEVEL"):
        return environ["BAKER_LOG_LEVEL"].upper()
    return "INFO" if args.command in DAEMONS else "WARNING"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return fail(str(exc), 2)
    setup_logging(log_level(args, os.environ), args.log_format or settings.log_format)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        return fail(str(exc), exc.code)
    except (InvalidId, ConfigError) as exc:  # an id no command checked, a setting a daemon
        # checks as it starts (BAKER_COMMAND_RUN_AS): still the user's input
        return fail(str(exc), 2)
    except (
        NatsUnavailable, ProvisioningError, NatsServerMissing, NatsServerTooOld,
        ReadModelUnavailable,
    ) as exc:  # fmt: skip
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
