"""The dashboard's agent views in a real browser (Debian's Chromium, playwright-core).

`baker up` runs agent jobs against the fake Messages API, priced from a `BAKER_MODEL_PRICES`
file; `tests/e2e/browser/agent.mjs` dispatches one, opens it and reads its conversation step
by step (model text, the tool call with its input, the tool's output, tokens and durations)
and its usage figures, then the usage panel's totals and cost chart, and takes a screenshot,
kept as `test-artifacts/dashboard-agent.png`. Prerequisites as for `test_dashboard.py`.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.system import running_with
from tests.e2e.test_dashboard import BROWSER_DIR, PNG_MAGIC, REPO, _browser_prerequisites
from tests.e2e.test_usage import MY_MODEL_JOB_COST, PRICES, reply
from tests.fakes.anthropic_server import FakeAnthropic

pytestmark = pytest.mark.e2e

ARTIFACT = REPO / "test-artifacts" / "dashboard-agent.png"


def test_the_job_view_shows_the_conversation_and_the_usage_panel_charts_the_cost(
    tmp_path: Path,
) -> None:
    node = _browser_prerequisites()
    token = secrets.token_urlsafe(24)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    shot = tmp_path / "dashboard-agent.png"
    with FakeAnthropic(reply) as api:
        env = {
            "ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": api.base_url,
            "BAKER_MODEL_PRICES": str(prices),
        }  # fmt: skip
        with running_with(tmp_path / "data", env, token=token) as system:
            try:
                run = subprocess.run(
                    [node, str(BROWSER_DIR / "agent.mjs"), system.url, str(shot), token],
                    cwd=BROWSER_DIR, capture_output=True, text=True, timeout=150, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                pytest.fail(f"agent.mjs did not finish in {exc.timeout} s:\n{exc.stderr}")
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    summary = json.loads(run.stdout.strip().splitlines()[-1])

    steps = summary["steps"]
    assert [(s["kind"], s["step"]) for s in steps] == [
        ("model", 1), ("toolCall", 2), ("toolResult", 3), ("model", 4),
    ]  # fmt: skip
    first, call, result, last = steps
    assert first["text"] == "Checking." and "command" in first["toolUse"]
    assert "100 in · 20 out · cache 1,000 read / 0 write" in first["tokens"]
    assert first["duration"].endswith(" ms")
    assert call["tool"] == "command" and "echo checked" in call["input"]
    assert "checked" in result["output"] and result["duration"].endswith(" ms")
    assert last["text"] == "All good." and "150 in · 10 out" in last["tokens"]

    # The job's figures in the page are the read model's.
    row = summary["row"]
    assert row == {
        "inputTokens": 250, "outputTokens": 30, "costUsd": pytest.approx(MY_MODEL_JOB_COST),
        "steps": 4,
    }  # fmt: skip
    shown = summary["shown"]
    assert (shown["steps"], shown["inputTokens"], shown["outputTokens"]) == ("4", "250", "30")
    assert shown["costUsd"] == f"${MY_MODEL_JOB_COST:.6f}"

    usage = summary["usage"]
    assert usage["barCost"] == pytest.approx(MY_MODEL_JOB_COST)
    assert usage["cost"] == f"${MY_MODEL_JOB_COST:.6f}" and usage["jobs"] == "1"
    assert usage["models"] == ["my-model"]

    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    ARTIFACT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
