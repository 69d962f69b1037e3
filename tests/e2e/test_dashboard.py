"""The dashboard in a real browser: Debian's Chromium driven by playwright-core (Node).

`baker up` runs on the embedded NATS with an API token; `tests/e2e/browser/dashboard.mjs`
enters the token in the page, dispatches a command job through the API and waits for the page
to show it completed (live, without a reload), then opens its timeline and takes a screenshot,
kept as `test-artifacts/dashboard.png`. `make test` installs Chromium and playwright-core
(`make browser-deps`); `BAKER_SKIP_BROWSER=1` skips this test on purpose.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.procs import BakerProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "e2e" / "browser"
SCRIPT = BROWSER_DIR / "dashboard.mjs"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACT = REPO / "test-artifacts" / "dashboard.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _browser_prerequisites() -> str:
    """The node binary, or a failure saying what is missing and how to get it."""
    if os.environ.get("BAKER_SKIP_BROWSER") == "1":
        pytest.skip("BAKER_SKIP_BROWSER=1: the browser test is skipped on purpose")
    node = shutil.which("node")
    missing = [
        what
        for what, present in (
            ("node (Node.js)", node is not None),
            (str(CHROMIUM), CHROMIUM.exists()),
            (
                "tests/e2e/browser/node_modules/playwright-core",
                (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(),
            ),
        )
        if not present
    ]
    if missing:
        pytest.fail(
            f"missing for the browser test: {', '.join(missing)}; `make test` installs them "
            "(or run `make browser-deps`); set BAKER_SKIP_BROWSER=1 to skip this test",
            pytrace=False,
        )
    assert node is not None
    return node


def test_dashboard_follows_a_job_live_in_chromium(tmp_path: Path) -> None:
    node = _browser_prerequisites()
    token = secrets.token_urlsafe(24)
    up = BakerProcess(
        "up",
        env={
            "BAKER_DATA_DIR": str(tmp_path / "data"),
            "BAKER_API_PORT": "0",
            "BAKER_NATS_URL": "",
            "BAKER_API_TOKEN": token,
        },
    )
    try:
        line = up.wait_for("baker up: dashboard", timeout=60)
        match = re.search(r"dashboard (http://[\w.\-\[\]:]+?):(\d+)/", line)
        assert match, line
        base = f"{match.group(1)}:{match.group(2)}"
        up.wait_for("running;", timeout=30)
        shot = tmp_path / "dashboard.png"
        try:
            run = subprocess.run(
                [node, str(SCRIPT), base, str(shot), token],
                cwd=BROWSER_DIR,
                capture_output=True,
                text=True,
                timeout=150,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"dashboard.mjs did not finish in {exc.timeout} s:\n{exc.stderr}")
    finally:
        code = up.stop(signal.SIGTERM)  # killed, with its output in the error, if it hangs
    output = f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}\nbaker up:\n" + "\n".join(up.lines)
    assert run.returncode == 0, output
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert summary["reloaded"] is False
    assert summary["timeline"][0] == "JobDispatched"
    assert "JobCompleted" in summary["timeline"]

    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC), "the screenshot is not a PNG"
    assert len(data) > 10_000, f"the screenshot is only {len(data)} bytes"
    ARTIFACT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)

    assert code == 0, "\n".join(up.lines)
