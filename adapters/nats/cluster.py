"""A local JetStream cluster of `nats-server` child processes on loopback (DESIGN §13).

For `baker cluster up`, the HA integration tests and the cluster bench. Each node is a
`NatsServerProcess` with its own directory under the data dir (`n1/`, `n2/`, ...: its
configuration, store, log and ports file), routes to every node, and a client port the server
picks itself (`-p -1`). The cluster ports must be known before any node starts, since each
node's route list names them all: they are taken from the kernel's free ports just before the
nodes start (a port taken by someone else in between makes that node fail to start, named).
A node killed and started again keeps its ports and its store, so it rejoins as itself and
its clients' URL lists stay right.

`wait_ready` returns once every node answers JetStream requests (the meta group has elected a
leader that every node knows) and every stream and consumer in the stores has a leader. Nodes
are stopped by pid, like the single server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.errors import NatsError
from adapters.nats.server import NatsServerProcess
from domain.nats_cluster import Node, client_urls, node_names, render_node

HOST = "127.0.0.1"
ASK = 0.5  # seconds for a JetStream API answer while groups elect (unanswered until then)
CONFIG = "node.conf"


class ClusterNotReady(RuntimeError):
    """The nodes run, but JetStream did not elect a meta leader in time."""


class LocalCluster:
    """N nodes of one JetStream cluster under `data_dir`."""

    def __init__(self, data_dir: Path, nodes: int = 3, *, binary: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.names = node_names(nodes)
        self.binary = binary
        self.nodes: dict[str, NatsServerProcess] = {}

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (`BAKER_NATS_URL`)."""
        return client_urls(HOST, [self.nodes[n].port for n in self.names])

    def node_url(self, name: str) -> str:
        return self.nodes[name].url

    def url_from(self, first: str) -> str:
        """The client URL list with node `first` first: a client connects there and, when it
        goes, reconnects to the others in order."""
        order = [first, *(n for n in self.names if n != first)]
        return client_urls(HOST, [self.nodes[n].port for n in order])

    def pids(self) -> dict[str, int | None]:
        return {name: self.nodes[name].pid for name in self.names}

    def start(self) -> str:
        """Start every node (from the calling thread: a node dies with the thread that
        started it) and return the client URL list. Call `wait_ready` before using it."""
        ports = free_ports(len(self.names))
        specs = [Node(name, HOST, port) for name, port in zip(self.names, ports, strict=True)]
        for spec in specs:
            node_dir = self.data_dir / spec.name
            node_dir.mkdir(parents=True, exist_ok=True)
            (node_dir / CONFIG).write_text(render_node(spec, specs))
        try:
            for spec in specs:
                node_dir = self.data_dir / spec.name
                proc = NatsServerProcess(node_dir, binary=self.binary, config=node_dir / CONFIG)
                self.nodes[spec.name] = proc
                proc.start()
        except BaseException:
            self.stop()
            raise
        return self.url

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every running node answers a JetStream request (the meta group has a leader
        and each node knows it), and every stream and consumer already in the stores has a
        leader: a cluster started again on its data dir elects them one raft group at a
        time, and until then their API requests go unanswered (a daemon provisioning would
        time out). `ClusterNotReady` naming what is missing after `timeout` seconds."""
        waiting = ["a JetStream meta leader"]
        try:
            async with asyncio.timeout(timeout):
                for name in self.names:
                    if self.running(name):
                        await _until_jetstream(self.node_url(name))
                nc = await Client.connect(Options(url=self.url, name="baker-cluster-probe"))
                try:
                    while True:
                        waiting = await leaderless(nc)
                        if not waiting:
                            break
                        await asyncio.sleep(0.1)  # polling the groups' elections
                finally:
                    await nc.close()
        except TimeoutError:
            raise ClusterNotReady(
                f"the JetStream cluster in {self.data_dir} is not ready after {timeout:g}s: "
                f"no leader for {', '.join(waiting[:5])} (logs: {self.data_dir}/n*/"
                "nats-server.log)"
            ) from None

    def running(self, name: str) -> bool:
        proc = self.nodes[name].proc
        return proc is not None and proc.poll() is None

    def kill(self, name: str) -> None:
        """SIGKILL one node by pid: no chance to flush or say goodbye to its peers."""
        self.nodes[name].kill()

    def restart(self, name: str) -> str:
        """Start a stopped or killed node again on its ports and store; its client URL."""
        node = self.nodes[name]
        node.stop()
        return node.start()

    def stop(self) -> None:
        """SIGTERM every node by pid (SIGKILL if one does not exit in time)."""
        for proc in self.nodes.values():
            with contextlib.suppress(ProcessLookupError):
                proc.stop()


def free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` distinct ports the kernel has free now (all bound at once, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


async def leaderless(nc: Client) -> list[str]:
    """The streams and consumers without a leader now (asked with short timeouts: an
    unanswered request is a group still electing)."""
    missing: list[str] = []
    try:
        streams = (await jsapi.api(nc, "STREAM.NAMES", timeout=ASK)).get("streams") or []
    except NatsError:
        return ["the stream list"]
    for stream in streams:
        try:
            info = await jsapi.api(nc, f"STREAM.INFO.{stream}", timeout=ASK)
            consumers = await jsapi.api(nc, f"CONSUMER.NAMES.{stream}", timeout=ASK)
        except NatsError:
            missing.append(f"stream {stream}")
            continue
        if not (info.get("cluster") or {}).get("leader"):
            missing.append(f"stream {stream}")
        for consumer in consumers.get("consumers") or []:
            try:
                found = await jsapi.api(nc, f"CONSUMER.INFO.{stream}.{consumer}", timeout=ASK)
            except NatsError:
                found = {}
            if not (found.get("cluster") or {}).get("leader"):
                missing.append(f"consumer {consumer} of {stream}")
    return missing


async def _until_jetstream(url: str) -> None:
    """Poll one node with `$JS.API.INFO` until it answers without an error (before the meta
    leader is known it answers 503 or not at all)."""
    nc = await Client.connect(Options(url=url, name="baker-cluster-probe"))
    try:
        while True:
            try:
                # A short timeout: a node without a leader may drop the request unanswered.
                await jsapi.api(nc, "INFO", timeout=ASK)
                return
            except NatsError:  # JetStream's 503 (a JetStreamError) or no answer yet
                await asyncio.sleep(0.1)  # polling the server until it answers
    finally:
        await nc.close()
