"""`baker cluster up` as a user runs it: the URL list to export works with R3 streams, the
nodes' pids are on record while it runs, and SIGTERM stops every node."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.streams import EVENTS_STREAM, Topology, provision
from tests.e2e.procs import BakerProcess, pid_alive
from tests.polling import until_sync

pytestmark = pytest.mark.cluster


async def test_cluster_up_prints_the_urls_and_stops_every_node(tmp_path: Path) -> None:
    where = tmp_path / "cluster"
    proc = BakerProcess("cluster", "up", "--data-dir", str(where))
    try:
        line = proc.wait_for("export BAKER_NATS_URL=", timeout=60)
        assert "export BAKER_REPLICAS=3" in proc.wait_for("BAKER_REPLICAS")
        proc.wait_for("Ctrl-C or SIGTERM stops every node")
        url = line.split("=", 1)[1].strip()
        assert len(url.split(",")) == 3
        record = json.loads((where / "cluster.json").read_text())
        assert record["url"] == url and sorted(record["nodes"]) == ["n1", "n2", "n3"]
        pids = [node["pid"] for node in record["nodes"].values()]
        assert all(pid_alive(pid) for pid in pids)

        nc = await Client.connect(Options(url=url, name="test-cli"))
        try:
            await provision(nc, Topology(replicas=3))
            info = await jsapi.stream_info(nc, EVENTS_STREAM)
            assert info["config"]["num_replicas"] == 3 and info["cluster"]["leader"]
        finally:
            await nc.close()
    finally:
        code = proc.stop(signal.SIGTERM)
    assert code == 0, proc.lines
    until_sync(lambda: not any(pid_alive(pid) for pid in pids), "every node stopped")
    assert not (where / "cluster.json").exists()
