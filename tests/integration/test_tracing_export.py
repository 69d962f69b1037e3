"""OTLP export: spans leave a process only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import Topology
from domain.specs import parse_job_spec
from tests.e2e.procs import BakerProcess
from tests.integration.pipeline import running_pipeline


class Collector:
    """A fake OTLP/HTTP collector: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, dict[str, Any]]] = []
        self.paths: list[str] = []
        self.arrived = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            attrs = {a.key: a.value.string_value for a in span.attributes}
                            collector.spans.append((span.name, attrs))
                collector.paths.append(self.path)
                collector.arrived.set()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    thread = threading.Thread(target=c.server.serve_forever, daemon=True)
    thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()


async def test_a_worker_exports_its_job_span_when_an_endpoint_is_set(
    nats_server: NatsServerProcess, collector: Collector
) -> None:
    async with running_pipeline(nats_server, topology=Topology(ack_wait=30)) as pipe:
        worker = BakerProcess("worker", env={
            "BAKER_NATS_URL": pipe.server.url, "BAKER_ALLOWED_COMMANDS": "echo",
            "BAKER_ACK_WAIT_SECONDS": "30",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "50",
        })  # fmt: skip
        try:
            worker.wait_for("ready")
            spec = parse_job_spec({"type": "command", "payload": {"command": "echo traced"}})
            job = await pipe.brain.dispatcher.dispatch(spec)
            await pipe.wait_job(job.job_id, {"completed"})
            assert collector.arrived.wait(20)
        finally:
            worker.stop(signal.SIGTERM)
    assert set(collector.paths) == {"/v1/traces"}
    runs = [attrs for name, attrs in collector.spans if name == "job.run"]
    assert [attrs["job.id"] for attrs in runs] == [job.job_id]


def test_without_an_endpoint_no_exporter_is_installed() -> None:
    probe = (
        "from adapters import tracing\n"
        "p = tracing.provider()\n"
        "print(len(p._active_span_processor._span_processors))\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "0"
