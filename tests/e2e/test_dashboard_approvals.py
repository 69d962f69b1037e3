"""The dashboard's approvals, rerun and fork in a real browser (Debian's Chromium,
playwright-core).

`baker up` runs agent jobs with `approve: ["http"]` against the fake Messages API (one `http`
tool use, then the answer) and a counting HTTP server as the tool's target;
`tests/e2e/browser/approvals.mjs` approves one from the "Waiting for approval" panel, denies
one with a note, meets a 409 for one answered behind its back, then reruns and forks the
approved job from its view, and takes a screenshot, kept as
`test-artifacts/dashboard-approvals.png`. Prerequisites as for `test_dashboard.py`.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.system import running_with
from tests.e2e.test_agent_control import CountingTool, Model
from tests.e2e.test_dashboard import BROWSER_DIR, PNG_MAGIC, REPO, _browser_prerequisites

pytestmark = pytest.mark.e2e

ARTIFACT = REPO / "test-artifacts" / "dashboard-approvals.png"


def test_approvals_are_answered_and_jobs_rerun_and_forked_from_the_page(tmp_path: Path) -> None:
    node = _browser_prerequisites()
    token = secrets.token_urlsafe(24)
    shot = tmp_path / "dashboard-approvals.png"
    with CountingTool() as tool, Model(tool.url) as model:
        env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": model.base_url,
               "BAKER_HTTP_ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
        with running_with(tmp_path / "data", env, token=token, workers=1) as system:
            try:
                run = subprocess.run(
                    [node, str(BROWSER_DIR / "approvals.mjs"), system.url, str(shot), token],
                    cwd=BROWSER_DIR, capture_output=True, text=True, timeout=180, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                pytest.fail(f"approvals.mjs did not finish in {exc.timeout} s:\n{exc.stderr}")
        tool_calls, tool_url = tool.calls, tool.url
        requests = list(model.requests)
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    summary = json.loads(run.stdout.strip().splitlines()[-1])

    approved = summary["approved"]
    assert approved["tool"] == "http" and f"{tool_url}/disk" in approved["input"]
    assert approved["count"] == "1 waiting"
    assert approved["message"].startswith(f"Approved for {approved['id']}")
    assert approved["apiStatus"] == "completed"

    denied = summary["denied"]
    assert "approval asked" in denied["asked"] and "http" in denied["asked"]
    assert "denied" in denied["denial"] and "by api" in denied["denial"]
    assert "note: not today" in denied["denial"]
    assert denied["output"] == "denied by an operator: not today"
    assert denied["apiStatus"] == "completed"

    stale = summary["stale"]
    assert f"Could not approve {stale['id']}: the API answered 409" in stale["message"]
    assert "not waiting" in stale["message"]
    assert tool_calls == 1  # only the approved call ran (and not the fork's copied one)

    source = approved["id"]
    rerun = summary["rerun"]
    assert rerun["sourceOrigins"] == 0  # the source shows nothing special
    assert rerun["origin"] == f"rerun of {source}" and rerun["source"] == source
    assert rerun["rerunOf"] == source and rerun["id"] != source

    fork = summary["fork"]
    assert fork["origin"] == f"fork of {source} step {fork['fromStep']}"
    assert fork["source"] == source
    assert fork["forkOf"] == {"jobId": source, "step": fork["fromStep"]}
    assert [kind for kind, _ in fork["copied"]] == [
        "AgentModelCalled", "AgentToolCalled", "AgentToolReturned",
    ]  # fmt: skip
    assert [step for _, step in fork["copied"]][-1] == fork["fromStep"]
    assert fork["own"] == [["AgentModelCalled", fork["fromStep"] + 1]]
    assert fork["answer"] == "The disk is fine." and fork["apiStatus"] == "completed"
    assert any(r.get("system") == "Be brief." for r in requests)

    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    ARTIFACT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
