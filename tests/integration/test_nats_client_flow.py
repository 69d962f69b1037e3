"""Our NATS client's flow control: back-pressure from a peer that stops reading, the bounded
buffer while reconnecting, and a peer that stops answering PINGs (a stale connection).

The peer is a loopback server speaking just enough of the protocol (INFO, then PONG to the
handshake's PING), so the test decides when it reads and when it answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from adapters.nats.client import Client, Options
from adapters.nats.errors import OutboundBufferFull
from adapters.nats.server import NatsServerProcess
from tests.polling import until


@dataclass
class Peer:
    url: str = ""
    reading: asyncio.Event = field(default_factory=asyncio.Event)
    answer_pings: bool = True
    connections: int = 0
    received: int = 0


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    state = Peer()
    state.reading.set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        info = {"server_id": "PEER", "version": "2.15.1", "proto": 1, "headers": True,
                "max_payload": 1048576}  # fmt: skip
        writer.write(f"INFO {json.dumps(info)}\r\n".encode())
        handshake = True
        try:
            while True:
                await state.reading.wait()
                chunk = await reader.read(65536)
                if not chunk:
                    break
                state.received += len(chunk)
                if (handshake or state.answer_pings) and b"PING\r\n" in chunk:
                    writer.write(b"PONG\r\n")
                    handshake = False
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.url = f"nats://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        state.reading.set()
        server.close()


async def test_a_peer_that_stops_reading_makes_publishers_wait(peer: Peer) -> None:
    nc = await Client.connect(Options(url=peer.url, check_version=False, high_water=256 << 10))
    try:
        peer.reading.clear()
        chunk = b"x" * 60_000
        while not nc.congested:  # the socket's buffers fill, then ours passes the mark
            nc.publish("load", chunk)
            await asyncio.sleep(0)  # let the loop write what was queued
        waiting = asyncio.ensure_future(nc.writable())
        for _ in range(20):  # loop turns in which it must not return: nothing is read
            await asyncio.sleep(0)
        assert not waiting.done()
        peer.reading.set()
        await asyncio.wait_for(waiting, 10)
        assert not nc.congested and nc.is_connected
    finally:
        await nc.close()


async def test_what_waits_for_a_reconnection_is_bounded(nats_server: NatsServerProcess) -> None:
    options = Options(url=nats_server.url, reconnect_buffer=10_000, high_water=5_000)
    nc = await Client.connect(options)
    try:
        nats_server.stop()
        await until(lambda: not nc.is_connected, "the disconnect")
        for _ in range(4):
            nc.publish("later", b"y" * 1000)
        assert not nc.congested
        nc.publish("later", b"y" * 1000)
        nc.publish("later", b"y" * 1000)
        assert nc.congested  # a publisher that awaits `writable()` now waits for the server
        with pytest.raises(OutboundBufferFull, match="waiting for the connection"):
            for _ in range(5):
                nc.publish("later", b"y" * 1000)
    finally:
        await nc.close()


async def test_a_peer_that_stops_answering_pings_is_left_and_redialled(peer: Peer) -> None:
    downs: list[str] = []
    nc = await Client.connect(
        Options(url=peer.url, check_version=False, ping_interval=0.05, max_outstanding_pings=2,
                on_disconnect=lambda: downs.append("down"), reconnect_wait=0.01)
    )  # fmt: skip
    try:
        peer.answer_pings = False
        await until(lambda: downs, "the stale connection dropped")
        await until(lambda: peer.connections >= 2, "dialled again")
        peer.answer_pings = True
        await until(lambda: nc.is_connected, "connected again")
    finally:
        await nc.close()
