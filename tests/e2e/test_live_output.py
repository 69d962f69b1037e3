"""Live output end to end (DESIGN §10): an agent job in `baker up` streams its model text
from the fake Messages API; the job's SSE stream carries it as `event: output` frames before
the job ends, and `baker dispatch --wait` prints it as it arrives.

Output is not stored, so a reply starts only once the watcher is following (`begin` gate) and
stops after its first word (`hold` gate) until the test has seen that word arrive live."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import BAKER, BakerProcess
from tests.e2e.system import System, running_with
from tests.fakes.anthropic_server import FakeAnthropic, text_message

ANSWER = "Thinking...\nThe answer is 42."


@pytest.fixture(scope="module")
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, api: FakeAnthropic) -> Iterator[System]:
    env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": api.base_url}
    with running_with(tmp_path_factory.mktemp("live") / "data", env) as s:
        yield s


def gated(api: FakeAnthropic) -> tuple[threading.Event, threading.Event]:
    begin, hold = threading.Event(), threading.Event()
    api.push(text_message(ANSWER, begin=begin, hold=hold))
    return begin, hold


async def test_the_job_stream_interleaves_output_frames(system: System, api: FakeAnthropic) -> None:
    begin, hold = gated(api)
    frames: list[tuple[str, Any]] = []
    async with httpx.AsyncClient(base_url=system.url, headers=system.headers, timeout=30) as c:
        answer = await c.post("/api/jobs", json={"type": "agent", "payload": {"prompt": "Go"}})
        job_id = answer.json()["id"]
        try:
            async with c.stream("GET", f"/api/jobs/{job_id}/stream") as stream:
                begin.set()  # the stream is open: the API follows the job's output
                event, data = "message", ""
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif not line and data:
                        frames.append((event, json.loads(data)))
                        if event == "output":
                            hold.set()  # the first word came while the reply was held
                        event, data = "message", ""
        finally:
            begin.set()
            hold.set()
    kinds = [kind for kind, _ in frames]
    outputs = [doc for kind, doc in frames if kind == "output"]
    assert outputs[0] == {"id": job_id, "attempt": 1, "seq": 1, "stream": "text",
                          "data": "Thinking...\n"}  # fmt: skip
    assert "".join(doc["data"] for doc in outputs) == ANSWER
    assert [doc["seq"] for doc in outputs] == list(range(1, len(outputs) + 1))
    assert kinds.index("output") < kinds.index("JobCompleted")
    assert frames[-1] == ("end", {"status": "completed"})
    completed = next(doc for kind, doc in frames if kind == "JobCompleted")
    assert completed["data"]["result"]["text"] == ANSWER  # the stored result: the whole text


def test_dispatch_wait_prints_output_as_it_arrives(system: System, api: FakeAnthropic) -> None:
    begin, hold = gated(api)
    proc = BakerProcess("dispatch", "agent", "Go", "--wait", env=system.env())
    try:
        proc.wait_for("JobDispatched")  # following the job's stream
        begin.set()
        proc.wait_for("Thinking...")  # printed while the rest of the reply is held
        assert not any("JobCompleted" in line for line in proc.lines)
    finally:
        begin.set()
        hold.set()
    assert proc.wait() == 0
    assert "The answer is 42." in proc.lines  # its own line, before the next timeline line
    done = next(i for i, line in enumerate(proc.lines) if "JobCompleted" in line)
    assert proc.lines.index("The answer is 42.") < done


def test_dispatch_wait_json_keeps_stdout_to_events(
    system: System, api: FakeAnthropic, tmp_path: Path
) -> None:
    begin, hold = gated(api)
    hold.set()
    with (tmp_path / "stderr").open("w+") as err, subprocess.Popen(
        [BAKER, "dispatch", "agent", "Go", "--wait", "--json"],
        stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, **system.env()},
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline()]  # the first event: the stream is open
            begin.set()
            lines += proc.stdout.read().splitlines()
        finally:
            begin.set()
        assert proc.wait(30) == 0
        err.seek(0)
        printed = err.read()
    events = [json.loads(line) for line in lines if line.strip()]
    assert all("type" in doc for doc in events) and events[-1]["type"] == "JobCompleted"
    assert ANSWER in printed  # the live output, on stderr
