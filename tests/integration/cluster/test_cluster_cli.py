"""`baker cluster up` as a user runs it: the URL list to export works with R3 streams, the
nodes' pids are on record while it runs, a node killed is named and SIGHUP brings it back to
catch up, and SIGTERM stops every node."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.streams import EVENTS_STREAM, Topology, provision
from tests.e2e.procs import BakerProcess, pid_alive
from tests.integration.cluster.conftest import caught_up
from tests.polling import until, until_sync

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

            # A node killed to try a failover is named; SIGHUP starts it again, and it rejoins.
            os.kill(record["nodes"]["n2"]["pid"], signal.SIGKILL)
            proc.wait_for("node n2 (pid", timeout=30)
            proc.proc.send_signal(signal.SIGHUP)
            proc.wait_for("node n2 started again", timeout=30)
            again = json.loads((where / "cluster.json").read_text())["nodes"]["n2"]
            assert again["url"] == record["nodes"]["n2"]["url"] and pid_alive(again["pid"])
            pids.append(again["pid"])
            await until(lambda: caught_up(nc, EVENTS_STREAM, "n2"), "n2 current again")
        finally:
            await nc.close()
    finally:
        code = proc.stop(signal.SIGTERM)
    assert code == 0, proc.lines
    until_sync(lambda: not any(pid_alive(pid) for pid in pids), "every node stopped")
    assert not (where / "cluster.json").exists()
