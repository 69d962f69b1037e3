"""The pure parts of our NATS client: URLs and credentials, JetStream reply subjects and
PubAcks, CONNECT options."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from adapters.nats.errors import NatsError
from adapters.nats.message import (
    JetStreamError,
    NotJetStream,
    PubAck,
    parse_delivery,
    parse_pub_ack,
)
from adapters.nats.protocol import Msg
from adapters.nats.servers import (
    Credentials,
    Server,
    ServerPool,
    connect_options,
    parse_url,
)


def test_urls_carry_a_user_and_password_or_a_token() -> None:
    assert parse_url("nats://u%40x:p%3Aw@h:4333") == Server("h", 4333, user="u@x", password="p:w")
    assert parse_url("nats://s3cret@h") == Server("h", 4222, token="s3cret")
    assert parse_url("10.0.0.1:5000") == Server("10.0.0.1", 5000)
    assert parse_url("nats://u:p@h").url == "nats://***@h:4222"


@pytest.mark.parametrize(
    ("url", "problem"),
    [("tls://h:4222", "only nats://"), ("nats://h:port", "bad port"), ("nats://:4222", "no host")],
)
def test_a_url_we_cannot_use_is_refused_naming_it(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_url(url)


def test_the_pool_takes_comma_separated_urls_and_announced_servers() -> None:
    pool = ServerPool("nats://a:1, nats://u:p@b:2")
    assert [(s.host, s.port) for s in pool.servers] == [("a", 1), ("b", 2)]
    pool.announce(["c:3", "a:1", "nonsense:port"], pool.servers[1])
    assert [(s.host, s.port, s.user) for s in pool.servers] == [
        ("a", 1, None), ("b", 2, "u"), ("c", 3, "u")
    ]  # fmt: skip
    with pytest.raises(ValueError, match="no NATS server URL"):
        ServerPool(" , ")


def test_the_pool_tries_servers_in_turn_and_backs_off_a_failing_one() -> None:
    pool = ServerPool("nats://a:1,nats://b:2", wait=1.0, wait_max=4.0)
    first = pool.next()
    pool.failed(first, now=100.0)
    assert 100.8 <= first.retry_at <= 101.2
    second = pool.next()
    assert second is not first and second.retry_at == 0.0
    pool.failed(first, now=200.0)
    assert 201.6 <= first.retry_at <= 202.4  # doubled
    pool.connected(first)
    assert first.retry_at == 0.0 and first.failures == 0


def test_connect_options_ask_for_headers_and_carry_the_url_s_credentials() -> None:
    options = connect_options({}, Server("h", 1, user="u", password="p"), None, "n", True)
    assert options["headers"] is True and options["no_responders"] is True
    assert (options["user"], options["pass"], options["name"]) == ("u", "p", "n")
    token = connect_options({}, Server("h", 1, token="t"), None, "n", False)
    assert token["auth_token"] == "t" and token["echo"] is False and "user" not in token


SEED = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"  # nkeys' documented example


def test_a_creds_file_gives_its_jwt_and_seed(tmp_path: Path) -> None:
    creds = tmp_path / "user.creds"
    creds.write_text(
        "-----BEGIN NATS USER JWT-----\neyJhbGc.eyJqdGki.sig\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{SEED}\n------END USER NKEY SEED------\n"
    )
    loaded = Credentials.load(str(creds))
    assert loaded.jwt == "eyJhbGc.eyJqdGki.sig" and loaded.seed == SEED.encode()
    bare = tmp_path / "user.nk"
    bare.write_text(SEED + "\n")
    assert Credentials.load(str(bare)) == Credentials("", SEED.encode())
    junk = tmp_path / "junk"
    junk.write_text("hello")
    with pytest.raises(NatsError, match="neither a NATS creds file nor an nkey seed"):
        Credentials.load(str(junk))


@pytest.mark.skipif(importlib.util.find_spec("nkeys") is not None, reason="nkeys installed")
def test_signing_without_nkeys_says_what_to_install() -> None:
    with pytest.raises(NatsError, match="needs the `nkeys` package"):
        Credentials("", SEED.encode()).sign("nonce")


def test_a_delivery_is_read_from_its_ack_subject() -> None:
    short = parse_delivery("$JS.ACK.JOBS.workers.3.41.17.1700000000000000000.9")
    assert (short.stream, short.consumer, short.delivered) == ("JOBS", "workers", 3)
    assert (short.stream_seq, short.consumer_seq, short.pending) == (41, 17, 9)
    long = parse_delivery("$JS.ACK.hub.ACCHASH.JOBS.workers.1.5.6.1700000000000000000.0.rnd")
    assert (long.stream, long.consumer, long.stream_seq, long.delivered) == (
        "JOBS",
        "workers",
        5,
        1,
    )
    for bad in ("_INBOX.x.1", "$JS.ACK.a.b.c.d.e.f.g", "$JS.ACK.S.C.x.1.1.1.1"):
        with pytest.raises(NotJetStream, match="not a JetStream ack subject"):
            parse_delivery(bad)


def test_a_pub_ack_or_its_error() -> None:
    ok = Msg("r", 1, "", b"", b'{"stream":"S","seq":7,"duplicate":true}')
    assert parse_pub_ack("s", ok) == PubAck("S", 7, True)
    refused = Msg(
        "r", 1, "", b"",
        b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}',
    )  # fmt: skip
    with pytest.raises(JetStreamError, match=r"s: wrong last sequence: 3 \(10071\)") as info:
        parse_pub_ack("s", refused)
    assert (info.value.code, info.value.err_code) == (400, 10071)
    for garbage in (b"garbage", b'{"stream":"S"}', b"[1]"):
        with pytest.raises(NatsError, match="not a PubAck"):
            parse_pub_ack("s", Msg("r", 1, "", b"", garbage))
