"""The dashboard's job view shows an agent job's text growing, in a real browser.

`baker up` talks to the fake Messages API; `tests/e2e/browser/live_output.mjs` opens the job
in the page and reports what it shows: the reply begins once the page follows the job, stops
after its first word until the page has shown it, then runs to the end. The screenshot is
kept as `test-artifacts/dashboard-output.png`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.system import running_with
from tests.e2e.test_dashboard import ARTIFACT, BROWSER_DIR, PNG_MAGIC, _browser_prerequisites
from tests.fakes.anthropic_server import FakeAnthropic, text_message

pytestmark = pytest.mark.e2e

SCRIPT = BROWSER_DIR / "live_output.mjs"
ANSWER = "Streaming words one by one until the end."


def said(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The script's next JSON line (failing with its stderr when it ended instead)."""
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(30)
        pytest.fail(f"live_output.mjs ended early:\n{proc.stderr.read()}", pytrace=False)
    doc: dict[str, Any] = json.loads(line)
    return doc


def answer(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def test_the_job_view_shows_the_text_growing(tmp_path: Path) -> None:
    node = _browser_prerequisites()
    begin, hold = threading.Event(), threading.Event()
    shot = tmp_path / "dashboard-output.png"
    with FakeAnthropic([text_message(ANSWER, begin=begin, hold=hold)]) as api:
        env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": api.base_url}
        with running_with(tmp_path / "data", env) as system, subprocess.Popen(
            [node, str(SCRIPT), system.url, str(shot), system.token], cwd=BROWSER_DIR,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ) as proc:  # fmt: skip
            try:
                following = said(proc)
                begin.set()  # the page follows the job: the model may begin
                answer(proc)
                held = said(proc)
                hold.set()  # the page showed the first word: the rest may come
                answer(proc)
                summary = said(proc)
            finally:
                begin.set()
                hold.set()
            assert proc.wait(30) == 0
    assert following["following"] == summary["jobId"]
    assert held["held"] == "Streaming "  # shown while the job still runs:
    assert held["status"].strip() in {"dispatched", "received", "running"}
    assert summary["text"] == ANSWER  # the same view, grown to the whole answer
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    target = ARTIFACT.with_name("dashboard-output.png")
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, target)
