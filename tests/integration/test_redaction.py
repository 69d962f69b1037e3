"""No secret a job prints or fetches is stored or sent (DESIGN §12), on a real nats-server: a
command job prints a generated `sk-ant-…` key, an HTTP job's response holds one, and neither
is in any stored event, any message published on `baker.>` (dispatches, reports, steps, live
output, events), nor any message left in `BAKER_JOBS`, all read back raw with plain nats-py.
A key in a command's arguments reaches the worker (the command runs with it) and nothing else.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from adapters.nats.server import NatsServerProcess
from domain.specs import parse_job_spec
from tests.integration.pipeline import Pipeline, running_pipeline
from tests.support.secrets import anthropic_key

FETCHED = anthropic_key()


@pytest.fixture
async def pipe(nats_server: NatsServerProcess) -> AsyncIterator[Pipeline]:
    async with running_pipeline(nats_server) as p:
        yield p


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"apiKey": FETCHED, "note": f"your key is {FETCHED}"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def http_target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def _stream_messages(pipe: Pipeline, stream: str) -> list[bytes]:
    """Every message still in `stream`, read one by one by sequence (raw bytes)."""
    js, jsm = pipe.raw.jetstream(), pipe.raw.jsm()
    state = (await jsm.stream_info(stream)).state
    found = []
    for seq in range(state.first_seq, state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except Exception:  # a deleted sequence: a work-queue message taken
            continue
        found.append(msg.subject.encode() + b" " + (msg.data or b""))
    return found


async def test_a_key_a_job_prints_or_fetches_is_in_no_event_and_no_message(
    pipe: Pipeline, tmp_path: Path, http_target: str
) -> None:
    printed, argument = anthropic_key(), anthropic_key()
    heard: list[bytes] = []

    async def hear(msg: Msg) -> None:
        heard.append(msg.subject.encode() + b" " + msg.data)

    await pipe.raw.subscribe("baker.>", cb=hear)  # everything published, from before any job
    await pipe.raw.flush()
    await pipe.start_worker()
    (tmp_path / "key.txt").write_text(f"ANTHROPIC_API_KEY={printed}\nkey: {printed}\n")
    (tmp_path / argument).touch()  # found by `ls` only under its real name
    specs = [
        {"type": "command", "payload": {"command": f"cat {tmp_path / 'key.txt'}"}},
        {"type": "http", "payload": {"url": f"{http_target}/key"}},
        {"type": "command", "payload": {"command": f"ls {tmp_path / argument}"}},
    ]
    jobs = [await pipe.brain.dispatcher.dispatch(parse_job_spec(spec)) for spec in specs]
    done = [await pipe.wait_job(job.job_id, {"completed"}) for job in jobs]
    await pipe.raw.flush()

    # what each job stored: the outputs, masked (the pipeline carried them)
    cat, http, ls = (h.events[-1].envelope.data.result for h in done)
    assert cat["stdout"] == "ANTHROPIC_API_KEY=***\nkey: sk-ant-api03-***\n"
    assert http["json"] == {"apiKey": "***", "note": "your key is sk-ant-api03-***"}
    assert ls["exitCode"] == 0  # it ran with the real name
    assert ls["stdout"] == f"{tmp_path}/sk-ant-api03-***\n"
    outputs = [m for m in heard if m.startswith(b"baker.jobs.output.")]
    assert any(b"key: sk-ant-api03-***" in m for m in outputs)  # live output came, masked

    events = await _stream_messages(pipe, "BAKER_EVENTS")
    left = await _stream_messages(pipe, "BAKER_JOBS")
    assert len(events) >= 12 and heard
    for key in (printed, FETCHED):
        assert [m for m in (*events, *left, *heard) if key.encode() in m] == []
    # the argument went to the worker in the dispatch message, and nowhere else
    carrying = [m.split(b" ", 1)[0] for m in (*events, *left, *heard) if argument.encode() in m]
    assert carrying == [b"baker.jobs.dispatch"]
    dispatched = done[2].events[0].envelope.data
    assert dispatched.payload == {"command": f"ls {tmp_path}/sk-ant-api03-***"}
