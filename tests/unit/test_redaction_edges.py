"""No secret leaves through an edge (DESIGN §12): generated secrets hidden in every field of
a job's payload, a worker's reports and steps, its live output and a log record are found in
nothing that is stored, published or logged, while the command that runs keeps them."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import JobDispatched
from domain.queue import NotRequeueable, Report, requeue_message
from domain.specs import holds_redactions, parse_job_spec, payload_document, redacted_payload
from services.logs import JsonFormatter, RedactSecrets, TextFormatter
from services.worker.journal import WorkerJournal
from services.worker.output import JobOutput
from services.worker.reporter import Reporter
from tests.fakes.clock import FakeClock
from tests.fakes.output import FakeOutput
from tests.support.secrets import Secret, hidden, leaked

PAYLOAD_FIELDS = (
    "command", "http.url", "http.query", "http.header", "http.json", "agent.prompt",
    "agent.system",
)  # fmt: skip


def _spec_doc(field: str, text: str, secret: Secret) -> tuple[dict[str, Any], Secret]:
    if field == "command":
        return {"type": "command", "payload": {"command": f"echo {text}"}}, secret
    if field.startswith("agent."):
        payload = {"prompt": "do it", field.partition(".")[2]: text}
        return {"type": "agent", "payload": payload}, secret
    http: dict[str, Any] = {"url": "https://api.example.com/v1"}
    if field == "http.url":  # the password of the URL (what a URL can hold)
        password = secret.parts[0].translate(str.maketrans("/?#@", "xxxx"))
        http["url"] = f"https://app:{password}@api.example.com/v1"
        secret = Secret("url password", http["url"], (password,))
    elif field == "http.query":
        http["url"] = f"https://api.example.com/v1?note={text}"
    elif field == "http.header":
        http["headers"] = {"X-Note": text}
    else:
        http["json"] = {"items": [{"note": text}], "n": 1}
    return {"type": "http", "payload": http}, secret


@settings(max_examples=200, deadline=None)
@given(hidden(), st.sampled_from(PAYLOAD_FIELDS))
def test_a_secret_in_any_field_of_a_payload_is_not_in_the_event(
    case: tuple[str, Secret], field: str
) -> None:
    doc, secret = _spec_doc(field, *case)
    spec = parse_job_spec(doc)
    stored = redacted_payload(spec)
    assert leaked(secret, json.dumps(stored)) == [], stored
    assert holds_redactions(spec.type, stored)  # so it is never rebuilt from the log as sent
    assert leaked(secret, json.dumps(payload_document(spec)))  # what runs keeps it


def test_a_masked_payload_is_never_requeued_from_the_log() -> None:
    spec = parse_job_spec({"type": "agent", "payload": {"prompt": "use xoxb-1234567890-abcdefgh"}})
    event = JobDispatched(job_type="agent", payload=redacted_payload(spec))
    try:
        requeue_message("job-1", event)
    except NotRequeueable as exc:
        assert "secrets" in str(exc)
    else:
        raise AssertionError("a masked payload was rebuilt as if it were the one sent")


class ListSink:
    """A `ReportSink` that keeps what is published."""

    def __init__(self) -> None:
        self.published: list[bytes] = []

    async def report_all(self, reports: Sequence[Report]) -> None:
        self.published.extend(r.payload for r in reports)

    async def close(self) -> None:
        pass


async def _report_everything(text: str) -> list[bytes]:
    sink = ListSink()
    reporter = Reporter(sink, "job-1", "worker-1", 1, {}, None, clock=FakeClock())
    reported = asyncio.Event()
    reported.set()
    journal = WorkerJournal(reporter, None, reported, FakeClock())
    await reporter.started()
    await reporter.progress(f"step: {text}")
    await reporter.status("running", error=text)
    content = [{"type": "text", "text": text}, {"type": "tool_use", "id": "t1", "name": "command",
                                                 "input": {"command": text}}]  # fmt: skip
    await journal.record("model", 1, model="m", stop_reason="tool_use", content=content)
    await journal.record("toolCall", 2, tool_use_id="t1", tool="http",
                         input={"url": "https://x", "headers": {"X-Note": text}})  # fmt: skip
    await journal.record("toolResult", 3, tool_use_id="t1", output=text, is_error=False)
    await journal.record("approval", 4, tool_use_id="t2", tool="command", input={"c": [text]})
    await reporter.finish(
        "failed", result={"stdout": text, "nested": [{"body": text}]}, error=f"exit 1: {text}"
    )
    return sink.published


@settings(max_examples=150, deadline=None)
@given(hidden())
def test_a_secret_in_any_report_or_step_is_not_published(case: tuple[str, Secret]) -> None:
    text, secret = case
    published = asyncio.run(_report_everything(text))
    assert len(published) == 9  # received, running, progress, status, 4 steps, result
    assert leaked(secret, *published) == []


async def _stream(text: str, cuts: list[int], flushes: list[bool]) -> str:
    sink = FakeOutput()
    out = JobOutput(sink, "job-1", 1, clock=FakeClock(), max_chunk=64)
    bounds = sorted({0, len(text), *(cut % (len(text) + 1) for cut in cuts)})
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        out.write("stdout", text[start:end])
        if flushes[i % len(flushes)]:
            out.flush()  # as the interval would, at any point
    out.close()
    return sink.text("job-1")


@settings(max_examples=200, deadline=None)
@given(hidden(), st.lists(st.integers(0, 10_000), max_size=8), st.lists(st.booleans(), min_size=8))
def test_a_secret_cut_anywhere_by_the_pipe_is_not_in_the_live_output(
    case: tuple[str, Secret], cuts: list[int], flushes: list[bool]
) -> None:
    text, secret = case
    sent = asyncio.run(_stream(text, cuts, flushes))
    assert leaked(secret, sent) == [], sent


def _log_everything(text: str, formatter: logging.Formatter) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(formatter)
    log = logging.Logger("baker.test")
    log.addHandler(handler)
    log.warning(f"in the message {text}")
    log.warning("in an argument %s and %r", text, {"k": text})
    log.warning("in extra fields", extra={"job_id": text, "subject": text, "other": [text]})
    try:
        raise ValueError(f"in an exception {text}")
    except ValueError:
        log.exception("failed")
    return stream.getvalue()


@settings(max_examples=150, deadline=None)
@given(hidden(), st.sampled_from([JsonFormatter(), TextFormatter()]))
def test_a_secret_in_any_part_of_a_log_record_is_not_logged(
    case: tuple[str, Secret], formatter: logging.Formatter
) -> None:
    text, secret = case
    logged = _log_everything(text, formatter)
    assert logged.count("\n") >= 4
    assert leaked(secret, logged) == [], logged
