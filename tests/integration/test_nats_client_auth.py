"""Our NATS client's first connection: credentials, refusals, permissions, old servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.nats.client import Client, Options
from adapters.nats.errors import NatsError, NatsUnavailable, PermissionDenied, ServerTooOld
from adapters.nats.message import Msg
from adapters.nats.server import NatsServerProcess
from tests.integration.test_server_version import old_server  # noqa: F401 (a fixture)

CONFIG = """
authorization {
  users = [
    {user: app, password: "s3cret pass", permissions: {publish: {deny: ["secret.>"]}}}
  ]
}
"""


def served(tmp_path: Path, *args: str) -> Iterator[NatsServerProcess]:
    server = NatsServerProcess(tmp_path / "nats", extra_args=args)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[NatsServerProcess]:
    yield from served(tmp_path, "--auth", "t0ken")


@pytest.fixture
def users_server(tmp_path: Path) -> Iterator[NatsServerProcess]:
    config = tmp_path / "users.conf"
    config.write_text(CONFIG)
    yield from served(tmp_path, "-c", str(config))


def with_auth(server: NatsServerProcess, auth: str) -> str:
    return f"nats://{auth}@{server.host}:{server.port}"


async def round_trip(nc: Client) -> bytes:
    nc.subscribe("echo", lambda m: m.respond(m.data))
    return (await nc.request("echo", b"ok", timeout=5)).data


async def test_a_token_in_the_url_is_accepted(token_server: NatsServerProcess) -> None:
    nc = await Client.connect(with_auth(token_server, "t0ken"))
    try:
        assert await round_trip(nc) == b"ok"
    finally:
        await nc.close()


async def test_a_user_and_password_in_the_url_are_accepted(users_server: NatsServerProcess) -> None:
    nc = await Client.connect(with_auth(users_server, "app:s3cret%20pass"))
    try:
        assert await round_trip(nc) == b"ok"
    finally:
        await nc.close()


@pytest.mark.parametrize("auth", ["app:wrong", "nobody:x", ""])
async def test_wrong_credentials_are_refused_at_once_naming_server_and_refusal(
    users_server: NatsServerProcess, auth: str
) -> None:
    url = with_auth(users_server, auth) if auth else users_server.url
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NatsUnavailable) as refused:
        await Client.connect(Options(url=url, first_connect_within=30))
    message = str(refused.value)
    assert "Authorization Violation" in message
    assert f"{users_server.host}:{users_server.port}" in message
    assert "wrong" not in message  # the password is never shown
    assert loop.time() - started < 30  # not retried until the deadline: every server said no


async def test_a_denied_publish_leaves_the_connection_up(users_server: NatsServerProcess) -> None:
    errors: list[NatsError] = []
    nc = await Client.connect(
        Options(url=with_auth(users_server, "app:s3cret%20pass"), on_error=errors.append)
    )
    try:
        got: list[Msg] = []
        nc.subscribe(">", got.append)
        await nc.flush()
        nc.publish("secret.plans", b"no")
        nc.publish("public.news", b"yes")
        await nc.flush()
        assert [m.subject for m in got] == ["public.news"]
        assert len(errors) == 1 and isinstance(errors[0], PermissionDenied)
        assert "secret.plans" in str(errors[0])
        assert nc.is_connected and nc.reconnects == 0
        assert await round_trip(nc) == b"ok"
    finally:
        await nc.close()


async def test_a_server_older_than_2_12_is_refused(old_server: str) -> None:  # noqa: F811
    with pytest.raises(ServerTooOld) as refused:
        await Client.connect(Options(url=old_server, first_connect_within=5))
    message = str(refused.value)
    assert "nats-server 2.9.10" in message and "2.12.0 or newer" in message
    assert old_server.removeprefix("nats://") in message


async def test_the_old_server_is_accepted_when_the_check_is_off(old_server: str) -> None:  # noqa: F811
    nc = await Client.connect(Options(url=old_server, check_version=False))
    assert nc.server_info["version"] == "2.9.10"
    await nc.close()


async def test_no_server_is_a_clear_error_after_the_deadline() -> None:
    with socket.socket() as probe:  # a port nobody listens on (bound, never listening)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        with pytest.raises(NatsUnavailable) as unavailable:
            await Client.connect(Options(url=f"nats://127.0.0.1:{port}", first_connect_within=1))
    message = str(unavailable.value)
    assert f"cannot connect to NATS at nats://127.0.0.1:{port} within 1s" in message
    assert "Connect call failed" in message or "refused" in message.lower()


async def test_the_first_server_that_answers_is_used(nats_server: NatsServerProcess) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
        nc = await Client.connect(Options(url=f"nats://127.0.0.1:{dead},{nats_server.url}"))
    try:
        assert nc.server is not None and nc.server.port == nats_server.port
    finally:
        await nc.close()


SEED = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"  # nkeys' documented example
PUBLIC = "UCK5N7N66OBOINFXAYC2ACJQYFSOD4VYNU6APEJTAVFZB2SVHLKGEW7L"  # its public key


async def test_an_nkey_seed_file_signs_the_server_s_nonce(tmp_path: Path) -> None:
    pytest.importorskip("nkeys", reason="signing needs the optional nkeys package")
    config = tmp_path / "nkeys.conf"
    config.write_text(f"authorization {{ users = [ {{nkey: {PUBLIC}}} ] }}\n")
    seed = tmp_path / "user.nk"
    seed.write_text(SEED + "\n")
    for server in served(tmp_path, "-c", str(config)):
        with pytest.raises(NatsUnavailable, match="Authorization Violation"):
            await Client.connect(server.url)
        nc = await Client.connect(Options(url=server.url, creds=str(seed)))
        try:
            assert await round_trip(nc) == b"ok"
        finally:
            await nc.close()
