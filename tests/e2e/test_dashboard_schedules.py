"""The dashboard's schedules panel in a real browser (Debian's Chromium, playwright-core).

`tests/e2e/browser/schedules.mjs` adds an every-second `echo` schedule through the page's form,
sees its fired count grow on the page, pauses it (checked through the API: paused, no next slot,
the same count on the page and in the API, and still the same once another schedule has fired
three times), meets the API's 400 for a bad cron and 409 for a taken name, adds a cron schedule
in another zone, opens a fired job whose view names the schedule and the slot, and deletes the
first schedule through the page's confirmation. Screenshot kept as
`test-artifacts/dashboard-schedules.png`. Prerequisites as for `test_dashboard.py`.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.system import running_with
from tests.e2e.test_dashboard import BROWSER_DIR, PNG_MAGIC, REPO, _browser_prerequisites

pytestmark = pytest.mark.e2e

ARTIFACT = REPO / "test-artifacts" / "dashboard-schedules.png"


def test_schedules_are_added_paused_and_deleted_from_the_page(tmp_path: Path) -> None:
    node = _browser_prerequisites()
    token = secrets.token_urlsafe(24)
    shot = tmp_path / "dashboard-schedules.png"
    with running_with(tmp_path / "data", {}, token=token, workers=1) as system:
        try:
            run = subprocess.run(
                [node, str(BROWSER_DIR / "schedules.mjs"), system.url, str(shot), token],
                cwd=BROWSER_DIR, capture_output=True, text=True, timeout=180, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"schedules.mjs did not finish in {exc.timeout} s:\n{exc.stderr}")
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["empty"] == "No schedules yet: add one below."

    added = summary["added"]
    assert added["message"].startswith("Added pulse") and added["messageClass"] == "msg ok"
    assert added["cells"] == ["pulse", "every 1 s", "UTC", "command: echo from-pulse", "active"]
    assert added["next"] and added["formCleared"]
    assert summary["grew"]["then"] > summary["grew"]["first"] >= 1

    paused = summary["paused"]
    assert paused["apiStatus"] == "paused" and paused["apiNext"] is None
    assert paused["pageFired"] == paused["apiFired"] >= summary["grew"]["then"]
    assert paused["pageNext"] == "—" and paused["message"] == "Paused pulse."
    still = summary["stillPaused"]  # three seconds of the Brain's later, by another schedule
    assert still["tick"] >= 3 and still["apiFired"] == still["pageFired"] == paused["apiFired"]
    assert still["jobs"] == paused["apiFired"]  # one job per fired slot, none after the pause

    bad = summary["badCron"]
    assert bad["message"].startswith("Could not add bad: the API answered 400: ")
    assert "minute: 61 is outside 0-59" in bad["message"]
    assert bad["rows"] == 1 and bad["formKept"] == "61 * * * *"  # nothing added, input kept
    assert summary["taken"]["message"] == (
        "Could not add pulse: the API answered 409: schedule 'pulse' exists already"
    )

    cron = summary["cron"]
    assert cron["cells"] == ["nightly", "30 3 * * 1-5", "Europe/London", "command: df -h", "active"]
    assert cron["next"] == cron["apiNext"] and cron["order"] == ["nightly", "pulse"]

    job = summary["job"]
    assert job["dataSchedule"] == "pulse" and job["dataSlot"] == job["slot"]
    assert re.fullmatch(r"from schedule pulse, slot \d\d:\d\d:\d\d", job["text"]), job["text"]

    deleted = summary["deleted"]
    assert deleted["question"] == "Delete pulse?" and deleted["keptInApi"]
    assert not deleted["inApi"] and deleted["left"] == ["nightly"]
    assert deleted["message"] == "Deleted pulse."

    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    ARTIFACT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
