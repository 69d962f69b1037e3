"""The CLI finds the embedded nats-server of a `baker up` on the same data dir, and only a
live one."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.nats.server import NatsServerProcess
from services import embedded
from services.config import Settings

DEFAULT = "nats://127.0.0.1:4222"


def _settings(data_dir: Path, **env: str) -> Settings:
    return Settings.from_env({"BAKER_DATA_DIR": str(data_dir), **env})


def test_a_live_embedded_server_is_found(tmp_path: Path, nats_server: NatsServerProcess) -> None:
    assert nats_server.pid is not None
    embedded.record(tmp_path / "data", nats_server.url, nats_server.pid)
    assert embedded.find(tmp_path / "data") == nats_server.url
    assert _settings(tmp_path / "data").nats_url_or_default == nats_server.url
    # An explicit BAKER_NATS_URL still wins.
    explicit = _settings(tmp_path / "data", BAKER_NATS_URL="nats://elsewhere:4222")
    assert explicit.nats_url_or_default == "nats://elsewhere:4222"


def test_without_a_record_the_default_applies(tmp_path: Path) -> None:
    assert embedded.find(tmp_path) is None
    assert _settings(tmp_path).nats_url_or_default == DEFAULT


def test_a_pid_that_is_not_a_nats_server_is_ignored(tmp_path: Path) -> None:
    embedded.record(tmp_path, "nats://127.0.0.1:1234", os.getpid())  # alive, but python
    assert embedded.find(tmp_path) is None
    assert _settings(tmp_path).nats_url_or_default == DEFAULT


def test_a_dead_pid_is_ignored(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    embedded.record(tmp_path, "nats://127.0.0.1:1234", child.pid)
    assert embedded.find(tmp_path) is None


@pytest.mark.parametrize(
    "content", ["not json", "{}", '{"url": 5, "pid": 1}', '{"url": "http://x", "pid": 1}', "[]"]
)
def test_an_unreadable_record_is_ignored_and_logged(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / embedded.RECORD).write_text(content)
    with caplog.at_level(logging.WARNING, logger="baker.config"):
        assert embedded.find(tmp_path) is None
    assert any(embedded.RECORD in r.getMessage() for r in caplog.records)


def test_forget_removes_only_its_own_record(tmp_path: Path) -> None:
    embedded.record(tmp_path, "nats://127.0.0.1:1234", 4242)
    embedded.forget(tmp_path, 4343)  # another `baker up`'s server: not ours to remove
    assert (tmp_path / embedded.RECORD).exists()
    embedded.forget(tmp_path, 4242)
    assert not (tmp_path / embedded.RECORD).exists()
    embedded.forget(tmp_path, 4242)  # already gone: fine
