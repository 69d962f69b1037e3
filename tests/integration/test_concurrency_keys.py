"""Concurrency keys (DESIGN §11) on a real server: the Brain, and `baker worker` processes with
more free slots than the keys allow. The jobs are `http` calls to the test's own server, which
holds each request until the test lets it go and counts the requests of each key in flight, so
the maximum is measured where the work happens, not guessed from timing."""

from __future__ import annotations

import signal
import threading
from collections import Counter

from adapters.nats.server import NatsServerProcess
from adapters.nats.streams import Topology
from domain.events import JobCompleted, JobHeld, JobReceived
from domain.specs import parse_job_spec
from tests.e2e.procs import BakerProcess
from tests.fakes.http_base import FakeHttpServer, Request, Response
from tests.integration.pipeline import Pipeline, running_pipeline
from tests.polling import until


class Counting(FakeHttpServer):
    """`GET /<key>/<n>`: held while `holding` is set; in-flight and maximum counts by key."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.arrivals: list[str] = []
        self.open = threading.Event()  # set: requests are answered at once

    def handle(self, request: Request) -> Response:
        key = request.path.split("/")[1]
        with self._lock:
            self.in_flight[key] += 1
            self.most[key] = max(self.most[key], self.in_flight[key])
            self.arrivals.append(request.path)
        try:
            self.open.wait(timeout=60)
            return Response.json(200, {"ok": request.path})
        finally:
            with self._lock:
                self.in_flight[key] -= 1

    def flying(self) -> dict[str, int]:
        with self._lock:
            return {k: n for k, n in self.in_flight.items() if n}


def worker(pipe: Pipeline, concurrency: int) -> BakerProcess:
    return BakerProcess("worker", env={
        "BAKER_NATS_URL": pipe.server.url, "BAKER_ACK_WAIT_SECONDS": str(int(pipe.ack_wait)),
        "BAKER_HTTP_ALLOWED_HOSTS": "127.0.0.1", "BAKER_HEARTBEAT_SECONDS": "0.5",
        "BAKER_WORKER_CONCURRENCY": str(concurrency),
    })  # fmt: skip


async def dispatch(pipe: Pipeline, url: str, key: str | None, limit: int | None = None) -> str:
    doc: dict[str, object] = {"type": "http", "payload": {"url": url}}
    if key is not None:
        doc |= {"concurrencyKey": key, "concurrencyLimit": limit}
    return (await pipe.brain.dispatcher.dispatch(parse_job_spec(doc))).job_id


async def kinds(pipe: Pipeline, job_id: str) -> list[str]:
    return [e.envelope.type for e in (await pipe.store.load("job", job_id)).events]


async def test_no_key_exceeds_its_limit_with_free_worker_slots(
    nats_server: NatsServerProcess,
) -> None:
    with Counting() as server:
        async with running_pipeline(nats_server) as pipe:
            workers = [worker(pipe, 4), worker(pipe, 4)]  # 8 slots
            try:
                for w in workers:
                    w.wait_for("ready")
                a = [await dispatch(pipe, f"{server.url}/a/{n}", "tenant-a", 2) for n in range(5)]
                b = [await dispatch(pipe, f"{server.url}/b/{n}", "tenant-b", 1) for n in range(3)]
                plain = [await dispatch(pipe, f"{server.url}/plain/{n}", None) for n in range(2)]
                want = {"a": 2, "b": 1, "plain": 2}
                await until(lambda: server.flying() == want, "every slot the keys allow taken")
                for job_id in a[2:] + b[1:]:  # the rest wait, recorded as held
                    assert await kinds(pipe, job_id) == ["JobDispatched", "JobHeld"]
                server.open.set()
                for job_id in a + b + plain:
                    history = await pipe.wait_job(job_id, {"completed", "failed"}, 40)
                    assert history.state.status == "completed", job_id
                held = [e for j in a for e in (await pipe.store.load("job", j)).events]
                assert sum(isinstance(e.envelope.data, JobHeld) for e in held) == 3
            finally:
                server.open.set()
                for w in workers:
                    w.stop(signal.SIGTERM)
        assert dict(server.most) == want
        assert sorted(server.arrivals) == sorted(
            [f"/a/{n}" for n in range(5)] + [f"/b/{n}" for n in range(3)] + ["/plain/0", "/plain/1"]
        )


async def test_a_worker_dying_holding_a_job_keeps_its_slot_until_the_job_ends(
    nats_server: NatsServerProcess,
) -> None:
    with Counting() as server:
        async with running_pipeline(nats_server, topology=Topology(ack_wait=2)) as pipe:
            first = worker(pipe, 4)
            first.wait_for("ready")
            one = await dispatch(pipe, f"{server.url}/c/1", "tenant-c", 1)
            two = await dispatch(pipe, f"{server.url}/c/2", "tenant-c", 1)
            await until(lambda: server.flying() == {"c": 1}, "the first job's call")
            first.stop(signal.SIGKILL)  # dies holding it: its slot stays taken
            server.open.set()  # (the dead worker's call ends; nobody reads its answer)
            await until(lambda: server.flying() == {}, "the dead worker's call over")
            second = worker(pipe, 4)
            try:
                done_two = await pipe.wait_job(two, {"completed", "failed"}, 40)
                done_one = await pipe.wait_job(one, {"completed", "failed"}, 40)
            finally:
                second.stop(signal.SIGTERM)
    assert done_one.state.status == done_two.state.status == "completed"
    assert server.arrivals == ["/c/1", "/c/1", "/c/2"]  # redelivered, then the next one
    completed_one = next(
        e.seq for e in done_one.events if isinstance(e.envelope.data, JobCompleted)
    )
    received_two = next(e.seq for e in done_two.events if isinstance(e.envelope.data, JobReceived))
    assert received_two > completed_one  # never two of the key received or running at once
    assert server.most["c"] == 1
