"""The CLI parses arguments strictly and prints lifecycle tables."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from services.cli.app import build_parser, log_level, main
from services.logs import setup_logging


def test_lifecycle_job_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lifecycle", "job"]) == 0
    out = capsys.readouterr().out
    for word in ("dispatched", "received", "running", "JobCancelRequested", "higher_attempt"):
        assert word in out


def test_lifecycle_json_is_the_table_as_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lifecycle", "handoff", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["states"] == ["new", "requested", "draining", "completed", "aborted"]
    assert {
        "trigger": "abort",
        "from": "requested | draining",
        "to": "aborted",
        "guard": "",
        "event": "HandoffAborted",
    } in doc["transitions"]


def test_bad_arguments_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["lifecycle", "jobs"])
    assert exit_.value.code == 2
    assert "invalid choice: 'jobs'" in capsys.readouterr().err


def test_bad_environment_exits_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAKER_API_PORT", "port")
    assert main(["lifecycle", "job"]) == 2
    assert "BAKER_API_PORT: 'port' is not an integer" in capsys.readouterr().err


def test_an_unreachable_nats_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("BAKER_NATS_URL", f"nats://user:pw@127.0.0.1:{port}")
    monkeypatch.setenv("BAKER_NATS_CONNECT_TIMEOUT", "1")
    assert main(["provision"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to NATS at nats://***@127.0.0.1" in err and "pw" not in err


@pytest.mark.parametrize(
    ("argv", "environ", "level"),
    [
        (["jobs"], {}, "WARNING"),  # a command prints its output; logs only what went wrong
        (["worker"], {}, "INFO"),  # a daemon's INFO lines are its story
        (["-v", "jobs"], {}, "INFO"),
        (["-vv", "jobs"], {}, "DEBUG"),
        (["jobs"], {"BAKER_LOG_LEVEL": "info"}, "INFO"),
        (["--log-level", "error", "-v", "up"], {"BAKER_LOG_LEVEL": "DEBUG"}, "ERROR"),
    ],
)
def test_the_log_level_a_command_runs_at(
    argv: list[str], environ: dict[str, str], level: str
) -> None:
    assert log_level(build_parser().parse_args(argv), environ) == level


def test_library_info_lines_are_kept_out_unless_debugging() -> None:
    setup_logging("INFO")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("baker.cli").getEffectiveLevel() == logging.INFO
    setup_logging("DEBUG")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    setup_logging("WARNING")
