"""`baker cluster up`: a local JetStream cluster on loopback (DESIGN §13)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from domain.nats_cluster import MAX_NODES
from services.cli.app_support import run_async
from services.cli.output import usage_error
from services.cluster import ClusterOptions, run_cluster, start_nodes
from services.config import Settings


def register(commands: Any) -> None:
    cluster = commands.add_parser("cluster", help="a local JetStream cluster for trying HA")
    actions = cluster.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    up = actions.add_parser(
        "up",
        help="run N nats-server nodes on loopback in the foreground (Ctrl-C stops them); "
        "prints the BAKER_NATS_URL list to export",
    )
    up.add_argument("--nodes", type=int, default=3, help="nodes (default 3; 1-5)")
    up.add_argument(
        "--data-dir", type=Path, help="where the nodes keep their stores (default "
        "$BAKER_DATA_DIR/cluster); a second `up` on it continues the same cluster",
    )  # fmt: skip
    up.set_defaults(handler=cmd_cluster_up)


def cmd_cluster_up(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.nodes <= MAX_NODES:
        usage_error(f"baker cluster up: --nodes must be 1 to {MAX_NODES}")
    options = ClusterOptions(args.data_dir or settings.data_dir / "cluster", args.nodes)
    cluster = start_nodes(options)
    if cluster is None:
        return 1
    return run_async(run_cluster(cluster, options))
