"""The dashboard's queue switch in a real browser (DESIGN §11): `tests/e2e/browser/queue.mjs`
pauses the queue from the page, sees a dispatched low-priority job counted on its lane and not
run, resumes and sees it complete; a job of a concurrency key at its limit shows why it waits.
The screenshot is kept as
`test-artifacts/dashboard-queue.png`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.system import running
from tests.e2e.test_dashboard import ARTIFACT, BROWSER_DIR, PNG_MAGIC, _browser_prerequisites

pytestmark = pytest.mark.e2e

SCRIPT = BROWSER_DIR / "queue.mjs"


def test_the_queue_switch_pauses_and_resumes(tmp_path: Path) -> None:
    node = _browser_prerequisites()
    shot = tmp_path / "dashboard-queue.png"
    with running(tmp_path / "data") as system:
        run = subprocess.run(
            [node, str(SCRIPT), system.url, str(shot), system.token],
            cwd=BROWSER_DIR, capture_output=True, text=True, timeout=150, check=False,
        )  # fmt: skip
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert (summary["paused"], summary["pausedBy"], summary["resumed"]) == (
        "paused", "dashboard", "running",
    )  # fmt: skip
    assert summary["held"] == "dispatched"  # counted on its lane, not run while paused
    assert summary["note"].startswith("paused by dashboard")
    assert summary["heldNote"] == "held: concurrency key 'page-key' is at its limit (1 at once)"
    assert summary["heldNote"] == "held: concurrency key 'page-key' is at its limit (1 at once)"
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    target = ARTIFACT.with_name("dashboard-queue.png")
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, target)
