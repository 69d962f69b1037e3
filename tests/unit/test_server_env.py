"""The embedded nats-server's environment."""

from pathlib import Path

import pytest

from adapters.nats.server import _scheduled, server_env


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
