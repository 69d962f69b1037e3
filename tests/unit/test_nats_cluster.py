"""The local cluster's node configurations (`domain.nats_cluster`): pure text."""

from __future__ import annotations

import pytest

from domain.nats_cluster import Node, client_urls, node_names, render_node

NODES = [
    Node("n1", "127.0.0.1", 6001),
    Node("n2", "127.0.0.1", 6002),
    Node("n3", "127.0.0.1", 6003),
]


def test_each_node_has_its_name_its_route_port_and_routes_to_every_node() -> None:
    text = render_node(NODES[1], NODES)
    assert 'server_name: "n2"' in text
    assert 'listen: "127.0.0.1:6002"' in text
    assert 'name: "baker"' in text
    routes = [f'"nats-route://127.0.0.1:{p}"' for p in (6001, 6002, 6003)]
    assert f"routes: [{', '.join(routes)}]" in text
    # The store and client port come as flags: the server refuses a store dir named twice.
    assert "store_dir" not in text and "port:" not in text


def test_every_node_gets_the_same_routes() -> None:
    routes = {
        next(line for line in render_node(n, NODES).splitlines() if "routes" in line) for n in NODES
    }
    assert len(routes) == 1


@pytest.mark.parametrize(
    ("node", "nodes", "says"),
    [
        (Node("n9", "127.0.0.1", 1), NODES, "not one of the cluster's nodes"),
        (Node("a b", "127.0.0.1", 1), [Node("a b", "127.0.0.1", 1)], "not a server or cluster"),
        (NODES[0], [NODES[0], Node("n1", "127.0.0.1", 2)], "the same name"),
    ],
)
def test_bad_clusters_are_refused(node: Node, nodes: list[Node], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        render_node(node, nodes)


def test_names_and_urls() -> None:
    assert node_names(3) == ["n1", "n2", "n3"]
    with pytest.raises(ValueError, match="1 to 5 nodes"):
        node_names(6)
    assert client_urls("127.0.0.1", [4001, 4002]) == "nats://127.0.0.1:4001,nats://127.0.0.1:4002"
