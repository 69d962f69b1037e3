"""Connecting with credentials from the URL; secrets never reach the logs."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from adapters.nats.client import Client
from adapters.nats.connector import NatsUnavailable, Options, redact_url
from adapters.nats.server import NatsServerProcess


@pytest.mark.parametrize(
    ("args", "good", "bad"),
    [
        (("--user", "baker", "--pass", "s3cret"), "baker:s3cret@", "baker:wrong@"),
        (("--auth", "t0ken"), "t0ken@", "nope@"),
    ],
)
async def test_auth_comes_from_the_url(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    args: tuple[str, ...],
    good: str,
    bad: str,
) -> None:
    server = NatsServerProcess(tmp_path / "nats", extra_args=args)
    server.start()
    try:
        base = f"127.0.0.1:{server.port}"
        nc = await Client.connect(Options(url=f"nats://{good}{base}"))
        assert nc.is_connected
        await nc.close()
        caplog.set_level(logging.DEBUG)
        with pytest.raises(NatsUnavailable) as err:
            await Client.connect(Options(url=f"nats://{bad}{base}", first_connect_within=1.5))
        assert "authorization violation" in str(err.value).lower()
        assert f"nats://***@{base}" in str(err.value)
        secret = good.rsplit(":", maxsplit=1)[-1].rstrip("@")
        assert secret not in caplog.text
    finally:
        server.stop()


def test_redact_url_hides_userinfo() -> None:
    assert redact_url("nats://u:p@host:4222") == "nats://***@host:4222"
    assert redact_url("nats://tok@host:4222") == "nats://***@host:4222"
    assert redact_url("nats://host:4222") == "nats://host:4222"


async def test_a_comma_separated_list_connects_to_a_server_that_answers(
    nats_server: NatsServerProcess,
) -> None:
    """`BAKER_NATS_URL` may name several servers: one that is down is passed over."""
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    nc = await Client.connect(Options(url=f"nats://127.0.0.1:{dead}, {nats_server.url}"))
    try:
        assert nc.health() == {"status": "healthy", "server": f"127.0.0.1:{nats_server.port}"}
    finally:
        await nc.close()
    assert nc.health() == {"status": "unhealthy"}
