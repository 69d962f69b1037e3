"""`baker cluster up`: a local JetStream cluster on loopback for trying and testing HA
(DESIGN §13).

It runs in the foreground like `baker up`: the nodes are child processes, stopped by pid on
Ctrl-C or SIGTERM (and they die with us if we are killed), so there is nothing to clean up
later and no `down` command to forget. It prints the client URL list to export as
`BAKER_NATS_URL` (with `BAKER_REPLICAS=3`) in the terminals that run the daemons, and keeps it
with the nodes' pids in `<cluster dir>/cluster.json` while it runs (to find the URLs again, or
a node to kill to see a failover). It says when a node dies; SIGHUP starts the dead nodes
again on their ports and stores, to see them rejoin and catch up.

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
import os
import signal
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
        say(f"running; Ctrl-C or SIGTERM stops every node, `kill -HUP {os.getpid()}` starts "
            "again those that died")  # fmt: skip
        await watch(cluster, options.stop, record)
        say("stopping")
    except ClusterNotReady as exc:
        log.error("%s", exc)
        return 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        await asyncio.to_thread(cluster.stop)
    return 0


async def watch(cluster: LocalCluster, stop: asyncio.Event, record: Path) -> None:
    """Until `stop`: say when a node dies (killed to try a failover, say), and on SIGHUP start
    the dead ones again on their ports and stores, so they rejoin and catch up."""
    revive = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, revive.set)
    down: set[str] = set()
    while not stop.is_set():
        for name, pid in cluster.pids().items():
            if name not in down and not cluster.running(name):
                down.add(name)
                say(f"node {name} (pid {pid}) is down; the others carry on if they are a majority")
        if revive.is_set():
            revive.clear()
            for name in sorted(down):
                try:
                    # From the main thread (this loop's): the node dies with the thread that
                    # started it.
                    cluster.restart(name)
                except (OSError, RuntimeError, TimeoutError) as exc:
                    log.error("node %s did not start again: %s", name, exc)
                    continue
                down.discard(name)
                _record(record, cluster)  # before saying so: a reader may act on the line
                say(f"node {name} started again (pid {cluster.pids()[name]}); it catches up "
                    "from the others")  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)  # polling the nodes' processes


def say(text: str) -> None:
    print(f"baker cluster: {text}", flush=True)


def _record(path: Path, cluster: LocalCluster) -> None:
    nodes = {n: {"pid": cluster.pids()[n], "url": cluster.node_url(n)} for n in cluster.names}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": cluster.url, "nodes": nodes}, indent=2) + "\n")
    tmp.replace(path)
