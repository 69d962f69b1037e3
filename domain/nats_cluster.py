"""A local JetStream cluster's node configurations (DESIGN §13), rendered as pure text.

`baker cluster up` runs N `nats-server` nodes on one machine; each needs its own server name
(JetStream's raft groups know a peer by it, so a node restarted on its store dir rejoins as
itself), its own store dir, and routes to every node's cluster port. Every node is given the
same route list, its own included: the server ignores a route to itself, and one list for all
means each node knows the full cluster size from the start, which the JetStream meta group
needs to elect its first leader. Client ports and the store are not in the configuration:
the process is given `-p` (a free one, or the one it had, on a restart) and `-js -sd DIR`
(the server refuses a store dir named twice).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

CLUSTER_NAME = "baker"
NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_NODES = 5  # BAKER_REPLICAS goes up to 5: more nodes would not hold a stream's replicas


@dataclass(frozen=True)
class Node:
    """One node: its server name and the loopback address its routes listen on."""

    name: str
    host: str
    cluster_port: int

    @property
    def route(self) -> str:
        return f"nats-route://{self.host}:{self.cluster_port}"


def node_names(count: int) -> list[str]:
    """`n1` ... `nN`; `ValueError` outside 1..MAX_NODES (one node is a cluster of one)."""
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"a local cluster has 1 to {MAX_NODES} nodes, not {count}")
    return [f"n{i}" for i in range(1, count + 1)]


def render_node(node: Node, cluster: Sequence[Node], name: str = CLUSTER_NAME) -> str:
    """The configuration file of `node` in `cluster` (which includes it)."""
    if node not in cluster:
        raise ValueError(f"node {node.name} is not one of the cluster's nodes")
    for item in (name, *(n.name for n in cluster)):
        if not NAME.fullmatch(item):
            raise ValueError(f"not a server or cluster name: {item!r} (A-Z a-z 0-9 _ -)")
    if len({n.name for n in cluster}) != len(cluster):
        raise ValueError("two nodes of the cluster have the same name")
    routes = ", ".join(_quoted(n.route) for n in cluster)
    return (
        "# A node of the local JetStream cluster of `baker cluster up` (DESIGN §13).\n"
        f"server_name: {_quoted(node.name)}\n"
        "cluster {\n"
        f"  name: {_quoted(name)}\n"
        f"  listen: {_quoted(f'{node.host}:{node.cluster_port}')}\n"
        f"  routes: [{routes}]\n"
        "}\n"
    )


def client_urls(host: str, ports: Sequence[int]) -> str:
    """The comma-separated client URL list to export as `BAKER_NATS_URL`."""
    return ",".join(f"nats://{host}:{port}" for port in ports)


def _quoted(text: str) -> str:
    """A double-quoted string: no variable expansion, paths with spaces stay one value."""
    return json.dumps(text)
