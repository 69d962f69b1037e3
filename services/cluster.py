"""`baker cluster up`: a local JetStream cluster on loopback for trying and testing HA
(DESIGN §13).

It runs in the foreground like `baker up`: the nodes are child processes, stopped by pid on
Ctrl-C or SIGTERM (and they die with us if we are killed), so there is nothing to clean up
later and no `down` command to forget. It prints the client URL list to export as
`BAKER_NATS_URL` (with `BAKER_REPLICAS=3`) in the terminals that run the daemons, and keeps it
with the nodes' pids in `<cluster dir>/cluster.json` while it runs (to find the URLs again, or
a node to kill to see a failover).

The nodes admit anyone on loopback: no role users (DESIGN §12). The roles' passwords go in
each daemon's own URL, while a cluster is shared through one `BAKER_NATS_URL` list that every
daemon uses as it is; an operator who wants the roles on a real cluster adds the block
`baker nats-config` prints to each node's configuration and gives each daemon its role's URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from adapters.nats.cluster import ClusterNotReady, LocalCluster
from adapters.nats.server import NatsServerMissing, NatsServerTooOld
from services.signals import stop_on_signals

log = logging.getLogger("baker.cluster")
RECORD = "cluster.json"


@dataclass
class ClusterOptions:
    data_dir: Path
    nodes: int = 3
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def start_nodes(options: ClusterOptions) -> LocalCluster | None:
    """Start the nodes from the calling (main) thread: each node's parent-death signal is tied
    to the thread that spawned it. None (logged) when they cannot start."""
    cluster = LocalCluster(options.data_dir, options.nodes)
    try:
        cluster.start()
    except (NatsServerMissing, NatsServerTooOld, OSError, RuntimeError, TimeoutError) as exc:
        log.error("%s", exc)
        return None
    return cluster


async def run_cluster(cluster: LocalCluster, options: ClusterOptions) -> int:
    """Wait for the meta leader, say how to use the cluster, run until stopped."""
    stop_on_signals(options.stop)
    where = options.data_dir.resolve()
    record = where / RECORD
    try:
        await cluster.wait_ready()
        _record(record, cluster)
        pids = ", ".join(f"{name} pid {pid}" for name, pid in cluster.pids().items())
        say(f"{options.nodes} nodes on loopback ({pids}), stores under {where}")
        say("JetStream meta leader elected; every node answers")
        print("\nIn each terminal that runs baker against it:\n", flush=True)
        print(f"  export BAKER_NATS_URL={cluster.url}", flush=True)
        print(f"  export BAKER_REPLICAS={min(3, options.nodes)}\n", flush=True)
        say(f"URLs and pids also in {record}")
        say("running; Ctrl-C or SIGTERM stops every node")
        await options.stop.wait()
        say("stopping")
    except ClusterNotReady as exc:
        log.error("%s", exc)
        return 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        await asyncio.to_thread(cluster.stop)
    return 0


def say(text: str) -> None:
    print(f"baker cluster: {text}", flush=True)


def _record(path: Path, cluster: LocalCluster) -> None:
    nodes = {n: {"pid": cluster.pids()[n], "url": cluster.node_url(n)} for n in cluster.names}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": cluster.url, "nodes": nodes}, indent=2) + "\n")
    tmp.replace(path)
