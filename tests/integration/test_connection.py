"""Connecting with credentials from the URL; secrets never reach the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adapters.nats.connection import NatsSettings, NatsUnavailable, connect, redact_url
from adapters.nats.server import NatsServerProcess
from tests.polling import until


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
        nc = await connect(NatsSettings(url=f"nats://{good}{base}"))
        assert nc.is_connected
        await nc.close()
        caplog.set_level(logging.DEBUG)
        with pytest.raises(NatsUnavailable) as err:
            await connect(NatsSettings(url=f"nats://{bad}{base}", first_connect_within=1.5))
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


async def test_the_fast_publish_delivers_what_nats_py_would(
    nats_server: NatsServerProcess,
) -> None:
    from nats.aio.client import Client  # noqa: PLC0415
    from nats.errors import BadSubjectError  # noqa: PLC0415
    from nats.protocol.parser import Parser  # noqa: PLC0415

    from adapters.nats import fastparse, speedups  # noqa: PLC0415

    nc = await connect(NatsSettings(url=nats_server.url))
    try:
        assert Client.publish is speedups.publish
        assert Parser.parse is fastparse.parse  # what the subscription below receives through
        sub = await nc.subscribe("fast.>")
        await nc.publish("fast.plain", b"one")
        await nc.publish("fast.headers", b"two", reply="fast.reply", headers={"A": " b "})
        await nc.publish("fast.odd", b"three", headers={" Spaced ": "c"})  # nats-py's path
        got = [await sub.next_msg(timeout=5) for _ in range(3)]
        assert [(m.subject, m.data, m.reply) for m in got] == [
            ("fast.plain", b"one", ""),
            ("fast.headers", b"two", "fast.reply"),
            ("fast.odd", b"three", ""),
        ]
        assert got[1].headers == {"A": "b"}
        assert got[2].headers == {"Spaced": "c"}
        with pytest.raises(BadSubjectError):
            await nc.publish("fast bad", b"")
        assert nc.stats["out_msgs"] >= 3
    finally:
        await nc.close()


async def test_reads_are_parsed_from_the_socket_again_after_a_reconnect(
    nats_server: NatsServerProcess,
) -> None:

    nc = await connect(NatsSettings(url=nats_server.url))

    def hooked() -> bool:
        protocol = nc._transport._io_writer.transport.get_protocol()
        parse_here = protocol.data_received.__qualname__.startswith("_socket_hook")
        return nc._ps._baker_hooked is protocol and parse_here

    async def round_trip(tag: str) -> list[bytes]:
        sub = await nc.subscribe(f"hook.{tag}.>")
        for i in range(50):
            await nc.publish(f"hook.{tag}.{i}", b"x" * i)
        got = [(await sub.next_msg(timeout=5)).data for _ in range(50)]
        await sub.unsubscribe()
        return got

    try:
        assert await round_trip("before") == [b"x" * i for i in range(50)]
        assert hooked()
        first = nc._transport._io_writer.transport.get_protocol()
        nats_server.restart()
        await until(
            lambda: (
                nc.is_connected and nc._transport._io_writer.transport.get_protocol() is not first
            ),
            "reconnected on a new transport",
        )
        assert await round_trip("after") == [b"x" * i for i in range(50)]
        assert hooked()  # on the new connection's protocol
    finally:
        await nc.close()
