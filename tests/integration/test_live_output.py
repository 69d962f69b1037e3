"""Live output through a real worker and nats-server: a command's stdout and stderr arrive
on `baker.jobs.output.<jobId>` while it runs; the stored result keeps the whole text."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from adapters.nats.server import NatsServerProcess
from domain.specs import parse_job_spec
from domain.wire_output import OutputMessage, decode_output
from services.worker.executors import ExecutorSettings
from tests.integration.pipeline import TEST_COMMANDS, Pipeline, running_pipeline
from tests.polling import until

# Prints, waits for the test to create the gate file, prints again (on both streams).
GATED = """#!/bin/sh
echo "first line"
echo "a warning" >&2
while [ ! -e "$1" ]; do sleep 0.02; done
echo "second line"
"""


@pytest.fixture
async def pipe(nats_server: NatsServerProcess) -> AsyncIterator[Pipeline]:
    async with running_pipeline(nats_server) as p:
        yield p


async def test_command_output_arrives_before_the_job_ends(pipe: Pipeline, tmp_path: Path) -> None:
    script = tmp_path / "gated"
    script.write_text(GATED)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    gate = tmp_path / "gate"
    heard: list[OutputMessage] = []

    async def hear(msg: Msg) -> None:
        heard.append(decode_output(msg.data))

    await pipe.raw.subscribe("baker.jobs.output.*", cb=hear)  # an independent listener
    await pipe.start_worker(executors=ExecutorSettings(allowed_commands=(*TEST_COMMANDS, "gated")))
    spec = {"type": "command", "payload": {"command": f"{script} {gate}"}}
    job = await pipe.brain.dispatcher.dispatch(parse_job_spec(spec))

    def text(stream: str) -> str:
        return "".join(m.data for m in heard if m.stream == stream)

    await until(lambda: text("stdout") == "first line\n" and text("stderr") == "a warning\n",
                "the first lines, live", timeout=15)  # fmt: skip
    assert not (await pipe.store.load("job", job.job_id)).state.terminal  # it waits for the gate
    gate.touch()
    history = await pipe.wait_job(job.job_id, {"completed"})
    await until(lambda: text("stdout") == "first line\nsecond line\n", "the rest", timeout=5)
    assert {(m.id, m.attempt) for m in heard} == {(job.job_id, 1)}
    assert [m.seq for m in heard] == list(range(1, len(heard) + 1))
    result = history.events[-1].envelope.data.result
    assert (result["stdout"], result["stderr"]) == ("first line\nsecond line\n", "a warning\n")
