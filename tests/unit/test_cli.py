"""The CLI parses arguments strictly and prints lifecycle tables."""

from __future__ import annotations

import json
import socket

import pytest

from services.cli.app import main


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
