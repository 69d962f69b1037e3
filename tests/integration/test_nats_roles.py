"""NATS least privilege (DESIGN §12) on a real server started from the generated
configuration, as `baker up` starts it: each role connects with its own password; what a role
may not do is refused by the server (a permissions violation) and leaves the streams as they
were; what it needs works."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import orjson
import pytest

from adapters.nats import jsapi
from adapters.nats.client import Client
from adapters.nats.connector import NatsUnavailable, Options
from adapters.nats.deliveries import JetStreamDeliveries
from adapters.nats.errors import NatsError, PermissionDenied
from adapters.nats.job_queue import JetStreamJobQueue
from adapters.nats.lease import JetStreamLeases
from adapters.nats.publisher import JetStreamPublisher
from adapters.nats.reader import OrderedReader
from adapters.nats.server import NatsServerProcess
from adapters.nats.step_history import JetStreamStepHistory
from adapters.nats.streams import EVENTS_STREAM, JOBS_STREAM, TASKS_STREAM, provision
from domain import nats_config
from domain.nats_roles import ROLES
from services import embedded
from services.cli import app as cli
from services.lease import LeaseCandidate
from tests.polling import until


@dataclass
class Roles:
    server: NatsServerProcess
    data_dir: Path
    passwords: dict[str, str]
    conns: list[Client] = field(default_factory=list)
    refusals: dict[int, list[NatsError]] = field(default_factory=dict)

    def url(self, role: str) -> str:
        return nats_config.role_url(self.server.url, role, self.passwords[role])

    async def connect(self, role: str) -> Client:
        errors: list[NatsError] = []
        conn = await Client.connect(
            Options(url=self.url(role), name=f"test-{role}", on_error=errors.append)
        )
        self.conns.append(conn)
        self.refusals[id(conn)] = errors
        return conn

    async def refused(self, conn: Client, subject: str) -> None:
        """Wait for the server's permissions violation naming `subject`."""

        def seen() -> bool:
            return any(
                isinstance(e, PermissionDenied) and subject.lower() in str(e).lower()
                for e in self.refusals[id(conn)]
            )

        await until(seen, f"a permissions violation for {subject}", timeout=10)


@pytest.fixture
def roles_server(tmp_path: Path) -> Iterator[tuple[NatsServerProcess, Path]]:
    config = embedded.prepare_roles(tmp_path)
    server = NatsServerProcess(tmp_path / "nats", config=config)
    server.start()
    try:
        yield server, tmp_path
    finally:
        server.stop()


@pytest.fixture
async def roles(roles_server: tuple[NatsServerProcess, Path]) -> AsyncIterator[Roles]:
    server, data_dir = roles_server
    passwords = embedded.passwords(data_dir)
    assert passwords is not None
    r = Roles(server, data_dir, passwords)
    brain = await r.connect("brain")
    await provision(brain)  # the Brain alone manages streams
    try:
        yield r
    finally:
        for conn in r.conns:
            await conn.close()


async def count(brain: Client, stream: str) -> int:
    return int((await jsapi.stream_info(brain, stream))["state"]["messages"])


FORBIDDEN_PUBLISHES = [
    ("worker", "baker.events.job.job-x", EVENTS_STREAM),
    ("monitor", "baker.events.job.job-x", EVENTS_STREAM),
    ("launcher", "baker.events.task.task-x", EVENTS_STREAM),
    ("reader", "baker.events.job.job-x", EVENTS_STREAM),
    ("extension", "baker.jobs.result.job-x", JOBS_STREAM),
    ("task-runner", "baker.jobs.status.job-x", JOBS_STREAM),
    ("worker", "baker.jobs.dispatch", JOBS_STREAM),
    ("projector", "baker.tasks.result.task-x", TASKS_STREAM),
]


@pytest.mark.parametrize(("role", "subject", "stream"), FORBIDDEN_PUBLISHES)
async def test_a_forbidden_publish_is_refused_and_nothing_is_stored(
    roles: Roles, role: str, subject: str, stream: str
) -> None:
    brain, conn = roles.conns[0], await roles.connect(role)
    before = await count(brain, stream)
    conn.publish(subject, b'{"forged": true}', reply=conn.new_inbox())
    await roles.refused(conn, subject)
    await conn.flush()
    assert await count(brain, stream) == before
    assert conn.is_connected  # a violation refuses the message, not the connection


async def test_a_reader_cannot_create_a_stream(roles: Roles) -> None:
    brain, reader = roles.conns[0], await roles.connect("reader")
    subject = "$JS.API.STREAM.CREATE.FORGED"
    reader.publish(subject, orjson.dumps({"name": "FORGED", "subjects": ["forged.>"]}))
    await roles.refused(reader, subject)
    with pytest.raises(jsapi.NotFound):
        await jsapi.stream_info(brain, "FORGED")


@pytest.mark.parametrize("action", ["DELETE", "PURGE"])
async def test_a_worker_cannot_delete_or_purge_the_event_log(roles: Roles, action: str) -> None:
    brain, worker = roles.conns[0], await roles.connect("worker")
    await JetStreamPublisher(brain).publish("baker.events.job.job-1", b"{}")
    worker.publish(f"$JS.API.STREAM.{action}.{EVENTS_STREAM}", b"")
    await roles.refused(worker, f"$JS.API.STREAM.{action}.{EVENTS_STREAM}")
    assert await count(brain, EVENTS_STREAM) == 1


async def test_only_workers_take_jobs_and_nobody_else_touches_the_ingest(roles: Roles) -> None:
    brain = roles.conns[0]
    await JetStreamPublisher(brain).publish("baker.jobs.dispatch", b'{"jobId": "job-1"}')
    for role in ("reader", "projector", "extension", "worker"):
        conn = await roles.connect(role)
        if role != "worker":
            subject = f"$JS.API.CONSUMER.MSG.NEXT.{JOBS_STREAM}.workers"
            conn.publish(subject, b'{"batch": 1}', reply=conn.new_inbox())
            await roles.refused(conn, subject)
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{JOBS_STREAM}.brain-ingest"
        conn.publish(subject, b'{"batch": 1}', reply=conn.new_inbox())
        await roles.refused(conn, subject)
    assert await count(brain, JOBS_STREAM) == 1  # still queued for a worker


async def test_an_extension_subscribes_to_nothing(roles: Roles) -> None:
    ext = await roles.connect("extension")
    ext.subscribe("baker.jobs.output.>", lambda _msg: None)
    await roles.refused(ext, "baker.jobs.output.>")


async def test_a_worker_takes_a_job_reports_and_reads_what_it_needs(roles: Roles) -> None:
    brain, worker = roles.conns[0], await roles.connect("worker")
    await JetStreamPublisher(brain).publish("baker.jobs.dispatch", b'{"jobId": "job-1"}')
    await JetStreamPublisher(brain).publish("baker.events.job.job-1", b'{"type": "x"}')
    await JetStreamJobQueue(brain).signal_cancel("job-1", "stop")
    (delivery,) = await JetStreamDeliveries(worker, JOBS_STREAM, "workers").fetch(1, wait=5)
    delivery.in_progress()
    delivery.ack()
    seen: list[bytes] = []
    brain.subscribe("baker.jobs.output.job-1", lambda msg: seen.append(msg.data))
    await brain.flush()
    ack = await JetStreamPublisher(worker).publish("baker.jobs.status.job-1", b"{}")
    await JetStreamPublisher(worker).publish("baker.jobs.step.job-1", b"{}")
    worker.publish("baker.jobs.output.job-1", b"hello")
    worker.publish("baker.system.health", b"{}")
    assert ack.stream == JOBS_STREAM
    queue = JetStreamJobQueue(worker)
    assert await queue.cancel_signal("job-1") == "stop"
    assert await queue.signalled_cancels() == {"job-1": "stop"}
    assert await JetStreamStepHistory(worker).steps_queued("job-1")
    found = await jsapi.direct_get(
        worker, EVENTS_STREAM, {"last_by_subj": "baker.events.job.job-1"}
    )
    assert found is not None
    await until(lambda: seen == [b"hello"], "the live output arrived")
    assert roles.refusals[id(worker)] == []


@pytest.mark.parametrize("role", ["reader", "projector", "monitor", "api"])
async def test_the_read_side_reads_the_log_in_order(roles: Roles, role: str) -> None:
    brain, conn = roles.conns[0], await roles.connect(role)
    for i in range(3):
        await JetStreamPublisher(brain).publish(f"baker.events.job.job-{i}", b"{}")
    reader = OrderedReader(conn, EVENTS_STREAM)
    got = await reader.fetch(10, wait=5)
    await reader.close()
    assert [seq for seq, _, _ in got] == [1, 2, 3]
    assert (await jsapi.stream_info(conn, JOBS_STREAM))["config"]["name"] == JOBS_STREAM
    assert await provision(conn)  # every stream there: a daemon's start-up check only reads
    assert roles.refusals[id(conn)] == []


async def test_the_monitor_records_health_and_hears_extensions(roles: Roles) -> None:
    brain, monitor = roles.conns[0], await roles.connect("monitor")
    ext = await roles.connect("extension")
    heard: list[str] = []
    monitor.subscribe("baker.extensions.>", lambda msg: heard.append(msg.subject))
    await monitor.flush()
    ext.publish("baker.extensions.announce", b"{}")
    ext.publish("baker.extensions.ext-1.heartbeat", b"{}")
    await JetStreamPublisher(monitor).publish("baker.events.service.worker-1", b"{}")
    await JetStreamPublisher(monitor).publish("baker.events.extension.ext-1", b"{}")
    await until(lambda: len(heard) == 2, "the extension heard")
    assert await count(brain, EVENTS_STREAM) == 2
    assert roles.refusals[id(monitor)] == roles.refusals[id(ext)] == []


async def test_launches_and_a_task_runners_messages(roles: Roles) -> None:
    brain, launcher = roles.conns[0], await roles.connect("launcher")
    runner = await roles.connect("task-runner")
    launcher.subscribe("baker.tasks.launch", lambda m: launcher.publish(m.reply, b"launched"))
    launcher.subscribe("baker.tasks.instructions.*", lambda m: launcher.publish(m.reply, b"go"))
    await launcher.flush()
    assert (await brain.request("baker.tasks.launch", b"{}", timeout=5)).data == b"launched"
    answer = await runner.request("baker.tasks.instructions.task-1", b"", timeout=5)
    assert answer.data == b"go"
    await JetStreamPublisher(runner).publish("baker.tasks.status.task-1", b"{}")
    await JetStreamPublisher(runner).publish("baker.tasks.result.task-1", b"{}")
    assert await count(brain, TASKS_STREAM) == 2
    runner.publish("baker.tasks.launch", b"{}")  # but it may not launch tasks itself
    await roles.refused(runner, "baker.tasks.launch")
    assert roles.refusals[id(launcher)] == []


async def test_nobody_without_a_roles_password_is_admitted(roles: Roles) -> None:
    for url in (roles.server.url, nats_config.role_url(roles.server.url, "brain", "wrong-pw1")):
        with pytest.raises(NatsUnavailable, match=r"(?i)authoriz"):
            await Client.connect(Options(url=url, first_connect_within=2))


def test_the_secrets_are_private_and_reused(tmp_path: Path) -> None:
    config = embedded.prepare_roles(tmp_path)
    first = embedded.passwords(tmp_path)
    assert first is not None and sorted(first) == sorted(ROLES)
    assert len(set(first.values())) == len(ROLES)  # one each
    for path in (tmp_path / embedded.USERS, config):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    os.chmod(tmp_path / embedded.USERS, 0o644)  # widened by hand: narrowed again
    embedded.prepare_roles(tmp_path)
    assert embedded.passwords(tmp_path) == first  # the next start reuses them
    assert stat.S_IMODE((tmp_path / embedded.USERS).stat().st_mode) == 0o600


async def test_no_password_reaches_a_log(roles: Roles, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for role in ROLES:
        await roles.connect(role)
    worker = roles.conns[ROLES.index("worker") + 1]
    worker.publish("baker.events.job.job-x", b"{}")
    await roles.refused(worker, "baker.events.job.job-x")
    server_log = (roles.server.store_dir / "nats-server.log").read_text()
    assert "Publish Violation" in server_log  # the server does log what it refused
    for password in roles.passwords.values():
        assert password not in caplog.text
        assert password not in server_log


async def test_a_seed_protocol_worker_connects_as_worker(roles: Roles) -> None:
    """A worker written against the wire contract only (plain nats-py), given the URL
    `baker nats-url worker` prints: binds the `workers` consumer, reports, acks."""
    brain = roles.conns[0]
    await JetStreamPublisher(brain).publish("baker.jobs.dispatch", b'{"id": "job-1"}')
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(roles.url("worker"), error_cb=on_error)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe_bind(durable="workers", stream=JOBS_STREAM)
        [msg] = await sub.fetch(1, timeout=5)
        await js.publish("baker.jobs.status.job-1", b'{"id": "job-1", "status": "completed"}')
        await msg.ack_sync()
    finally:
        await nc.close()
    assert errors == []
    stored = await jsapi.get_msg(brain, JOBS_STREAM, {"last_by_subj": "baker.jobs.status.job-1"})
    assert stored is not None  # and the dispatch message is gone (acknowledged)
    assert await jsapi.get_msg(brain, JOBS_STREAM, {"last_by_subj": "baker.jobs.dispatch"}) is None


def test_nats_config_runs_an_external_server_with_the_roles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`baker nats-config` prints placeholders an external server fills from its
    environment; `--secrets` the data dir's own passwords (made there, mode 0600)."""
    monkeypatch.setenv("BAKER_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["nats-config"]) == 0
    text = capsys.readouterr().out
    assert "$BAKER_NATS_PASSWORD_WORKER" in text and not (tmp_path / "data").exists()
    conf = tmp_path / "external.conf"
    conf.write_text(text)
    for role in ROLES:  # the server's environment
        monkeypatch.setenv(nats_config.password_variable(role), f"pw-of-the-{role}")
    server = NatsServerProcess(tmp_path / "nats", config=conf)
    server.start()
    try:

        async def check() -> None:
            url = nats_config.role_url(server.url, "worker", "pw-of-the-worker")
            conn = await Client.connect(Options(url=url))
            await conn.flush()
            await conn.close()
            with pytest.raises(NatsUnavailable):
                await Client.connect(Options(url=server.url, first_connect_within=2))

        asyncio.run(check())
    finally:
        server.stop()
    assert cli.main(["nats-config", "--secrets"]) == 0
    with_secrets = capsys.readouterr().out
    passwords = embedded.passwords(tmp_path / "data")
    assert passwords is not None
    assert f'password: "{passwords["reader"]}"' in with_secrets
    assert stat.S_IMODE((tmp_path / "data" / embedded.USERS).stat().st_mode) == 0o600


def test_nats_url_needs_a_running_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAKER_DATA_DIR", str(tmp_path))
    assert cli.main(["nats-url", "worker"]) == 1
    assert "no `baker up`" in capsys.readouterr().err.replace("\n", " ")
    with pytest.raises(SystemExit) as exited:
        cli.main(["nats-url", "admin"])
    assert exited.value.code == 2
    assert "invalid choice: 'admin'" in capsys.readouterr().err


async def test_a_projector_takes_and_renews_its_read_models_lease(roles: Roles) -> None:
    conn = await roles.connect("projector")
    candidate = LeaseCandidate(JetStreamLeases(conn), "projector.abc123", "projector-1")
    assert await candidate.try_acquire()
    assert await candidate.renew()
    await candidate.release()
    assert roles.refusals[id(conn)] == []
