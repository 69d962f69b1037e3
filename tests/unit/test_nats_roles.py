"""The roles' permissions table (DESIGN §12) and the server configuration rendered from it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.nats import streams
from adapters.nats.servers import parse_url
from domain import nats_config
from domain.nats_roles import (
    CANCELS,
    EVENTS,
    JOBS,
    LANES,
    LEASES,
    ROLE_PERMISSIONS,
    ROLES,
    UnknownRole,
    permissions,
)


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` one or more trailing tokens."""
    pat, sub = pattern.split("."), subject.split(".")
    for i, token in enumerate(pat):
        if token == ">":
            return len(sub) > i
        if i >= len(sub) or (token != "*" and token != sub[i]):
            return False
    return len(pat) == len(sub)


def may_publish(role: str, subject: str) -> bool:
    return any(matches(p, subject) for p in permissions(role).publish)


def test_the_table_names_the_streams_and_consumers_the_adapters_use() -> None:
    assert (EVENTS, JOBS, CANCELS) == (
        streams.EVENTS_STREAM,
        streams.JOBS_STREAM,
        streams.CANCELS_STREAM,
    )
    assert sorted(LANES) == sorted(streams.LANE_CONSUMERS.values())
    assert set(ROLE_PERMISSIONS) == set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_only_the_brain_and_the_monitor_write_events(role: str) -> None:
    writes_jobs = may_publish(role, "baker.events.job.job-1")
    writes_health = may_publish(role, "baker.events.service.worker-1")
    assert writes_jobs == (role == "brain")
    assert writes_health == (role in ("brain", "monitor"))


@pytest.mark.parametrize("role", [r for r in ROLES if r != "brain"])
@pytest.mark.parametrize("action", ["CREATE", "UPDATE", "DELETE", "PURGE"])
@pytest.mark.parametrize("stream", [EVENTS, JOBS, CANCELS, "ANY"])
def test_no_role_but_the_brain_manages_streams(role: str, action: str, stream: str) -> None:
    assert not may_publish(role, f"$JS.API.STREAM.{action}.{stream}")
    assert not may_publish(role, f"$JS.API.STREAM.MSG.DELETE.{stream}")


@pytest.mark.parametrize("role", [r for r in ROLES if r != "brain"])
def test_only_the_brain_dispatches_or_takes_the_ingest(role: str) -> None:
    assert not may_publish(role, "baker.jobs.dispatch")
    assert not may_publish(role, "baker.jobs.dispatch.high")
    assert not may_publish(role, f"$JS.API.CONSUMER.MSG.NEXT.{JOBS}.brain-ingest")
    assert not may_publish(role, f"$JS.API.CONSUMER.DELETE.{JOBS}.workers")
    assert not may_publish(role, "$KV.baker-leader.brain")


def test_a_worker_reports_takes_jobs_and_reads_what_it_needs() -> None:
    for subject in (
        "baker.jobs.status.job-1", "baker.jobs.result.job-1", "baker.jobs.step.job-1",
        "baker.jobs.output.job-1", "baker.system.health",
        *(f"$JS.API.CONSUMER.MSG.NEXT.{JOBS}.{lane}" for lane in LANES),
        f"$JS.ACK.{JOBS}.workers.1.2.3.4.5", f"$JS.API.DIRECT.GET.{EVENTS}",
        f"$JS.API.DIRECT.GET.{CANCELS}",
    ):  # fmt: skip
        assert may_publish("worker", subject), subject
    assert not may_publish("worker", f"$JS.ACK.{JOBS}.brain-ingest.1.2.3.4.5")
    assert not may_publish("worker", "baker.extensions.announce")


def test_an_extension_a_task_runner_and_a_reader_are_narrow() -> None:
    assert permissions("extension").publish == ("baker.extensions.>",)
    runner = permissions("task-runner").publish
    assert all(s.startswith("baker.tasks.") for s in runner)
    assert not may_publish("task-runner", "baker.tasks.launch")
    assert not may_publish("task-runner", "baker.tasks.cancel.task-1")
    reader = permissions("reader").publish
    assert all(s.startswith("$JS.API.") for s in reader)
    assert not any(matches(s, f"$JS.API.CONSUMER.MSG.NEXT.{JOBS}.workers") for s in reader)


def test_an_unknown_role_is_named() -> None:
    with pytest.raises(UnknownRole, match=r"'admin'.*brain, worker"):
        permissions("admin")
    with pytest.raises(UnknownRole, match="'admin'"):
        nats_config.role_url("nats://h:4222", "admin", "password")


def test_the_rendered_block_has_every_role_and_its_lists() -> None:
    passwords = {role: f"secret-{role}" for role in ROLES}
    text = nats_config.render_authorization(passwords)
    assert text.count("user: ") == len(ROLES)
    for role in ROLES:
        assert f'user: "{role}"\n      password: "secret-{role}"' in text
    assert '"$JS.API.CONSUMER.MSG.NEXT.BAKER_JOBS.workers-high"' in text
    extension = text[text.index('user: "extension"') :]
    assert 'subscribe: { deny: [">"] }' in extension.split("}\n    }")[0]  # nothing, not all
    assert text.count("allow_responses: true") == 2  # the brain and the launcher


def test_placeholders_name_an_environment_variable_per_role() -> None:
    text = nats_config.render_authorization()
    found = re.findall(r"password: (\S+)", text)
    assert found == [f"$BAKER_NATS_PASSWORD_{r.upper().replace('-', '_')}" for r in ROLES]
    assert nats_config.password_variable("task-runner") == "BAKER_NATS_PASSWORD_TASK_RUNNER"


def test_a_missing_password_is_refused_by_role() -> None:
    with pytest.raises(ValueError, match="reader"):
        nats_config.render_authorization({r: "pw" for r in ROLES if r != "reader"})


@given(st.one_of(st.text(max_size=40), st.from_regex(nats_config.PASSWORD, fullmatch=True)))
def test_a_password_is_written_verbatim_or_refused(password: str) -> None:
    """Only characters the configuration's lexer reads as themselves (no escapes)."""
    try:
        text = nats_config.render_authorization(dict.fromkeys(ROLES, password))
    except ValueError as exc:
        assert not nats_config.PASSWORD.fullmatch(password)
        assert "brain" in str(exc)
        return
    assert f'password: "{password}"\n' in text


def test_a_role_url_carries_the_credentials_quoted() -> None:
    url = nats_config.role_url("nats://127.0.0.1:4222", "worker", "a/b+c=d-e_f")
    assert url == "nats://worker:a%2Fb%2Bc%3Dd-e_f@127.0.0.1:4222"
    assert (
        nats_config.role_url("127.0.0.1:5", "reader", "x" * 8)
        == "nats://reader:xxxxxxxx@127.0.0.1:5"
    )
    replaced = nats_config.role_url("nats://old:secret@[::1]:5/", "task-runner", "y" * 8)
    assert replaced == "nats://task-runner:yyyyyyyy@[::1]:5"
    with pytest.raises(ValueError, match="not one NATS URL: nats://\\*\\*\\*@a:1,b:2"):
        nats_config.role_url("nats://u:secret@a:1,b:2", "reader", "x" * 8)
    with pytest.raises(ValueError, match="not a generated one"):
        nats_config.role_url("nats://a:1", "reader", "a b@c")


@given(st.from_regex(nats_config.PASSWORD, fullmatch=True))
def test_our_client_reads_a_role_url_back(password: str) -> None:
    server = parse_url(nats_config.role_url("nats://127.0.0.1:4222", "task-runner", password))
    assert (server.user, server.password, server.host, server.port) == (
        "task-runner",
        password,
        "127.0.0.1",
        4222,
    )


def test_a_projector_keeps_its_read_models_lease_and_nothing_else_in_kv() -> None:
    assert LEASES == streams.LEASES_STREAM
    assert may_publish("projector", f"{streams.LEASES_PREFIX}.projector.abc123")
    assert may_publish("projector", f"$JS.API.DIRECT.GET.{LEASES}")
    assert not may_publish("projector", "$KV.baker-leader.brain")
    assert not may_publish("projector", "$KV.baker-cancels.job-1")
    assert not may_publish("reader", f"{streams.LEASES_PREFIX}.projector.abc123")


def test_the_api_reads_and_never_writes() -> None:
    assert may_publish("api", f"$JS.API.DIRECT.GET.{EVENTS}")
    assert not may_publish("api", "baker.jobs.dispatch")
    assert not may_publish("api", f"{streams.LEASES_PREFIX}.projector.abc123")
    assert not any(p.startswith("baker.events") for p in permissions("api").publish)
    assert "baker.jobs.output.*" in permissions("api").subscribe
