"""The embedded nats-server's environment."""

import sysconfig
from pathlib import Path

import pytest

from adapters.nats.server import (
    MIN_VERSION,
    NatsServerMissing,
    NatsServerTooOld,
    _scheduled,
    find_nats_server,
    parse_version,
    require_version,
    server_env,
)


def test_half_the_cores_by_default() -> None:
    assert server_env({"PATH": "/bin"}, 8) == {"PATH": "/bin", "GOMAXPROCS": "4"}


def test_at_least_one_scheduler_thread() -> None:
    assert server_env({}, 1)["GOMAXPROCS"] == "1"
    assert server_env({}, None)["GOMAXPROCS"] == "1"


def test_an_operator_setting_wins() -> None:
    assert server_env({"GOMAXPROCS": "6"}, 2)["GOMAXPROCS"] == "6"


def test_the_callers_mapping_is_not_changed() -> None:
    environ = {"PATH": "/bin"}
    server_env(environ, 2)
    assert environ == {"PATH": "/bin"}


def test_the_server_is_batch_scheduled_by_default() -> None:
    cmd = ["nats-server", "-js"]
    assert _scheduled(cmd, "")[-4:] == ["--batch", "0", "nats-server", "-js"]
    assert Path(_scheduled(cmd, " Batch ")[0]).name == "chrt"


def test_normal_scheduling_on_request() -> None:
    assert _scheduled(["nats-server"], "normal") == ["nats-server"]


def test_an_unknown_policy_is_named() -> None:
    with pytest.raises(ValueError, match=r"BAKER_NATS_SCHED .* not 'fifo'"):
        _scheduled(["nats-server"], "fifo")


def test_versions_are_read_from_the_binary_and_from_info() -> None:
    assert parse_version("nats-server: v2.15.1\n") == (2, 15, 1)
    assert parse_version("2.12.0-beta.2") == (2, 12, 0)
    assert parse_version("<nats server v2.9.10>") == (2, 9, 10)
    assert parse_version("nats-server: unknown") is None


def test_an_old_server_is_refused_naming_both_versions() -> None:
    with pytest.raises(
        NatsServerTooOld, match=r"/usr/sbin/nats-server is nats-server 2\.9\.10; .*2\.12\.0"
    ):
        require_version((2, 9, 10), "/usr/sbin/nats-server")
    with pytest.raises(NatsServerTooOld, match="of unknown version"):
        require_version(None, "x")
    require_version(MIN_VERSION, "x")
    require_version((3, 0, 0), "x")


def test_the_server_comes_from_the_virtualenv_unless_overridden(tmp_path: Path) -> None:
    found = find_nats_server({})
    assert found == str(Path(sysconfig.get_path("scripts")) / "nats-server")
    fake = tmp_path / "my-nats-server"
    fake.write_text("#!/bin/sh\n")
    with pytest.raises(
        NatsServerMissing, match=r"BAKER_NATS_SERVER='.*my-nats-server' is not an executable"
    ):
        find_nats_server({"BAKER_NATS_SERVER": str(fake)})
    fake.chmod(0o755)
    assert find_nats_server({"BAKER_NATS_SERVER": str(fake)}) == str(fake)
    with pytest.raises(NatsServerMissing, match="BAKER_NATS_SERVER"):
        find_nats_server({"BAKER_NATS_SERVER": "no-such-nats-server-here"})
