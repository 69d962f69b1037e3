"""Pure pieces of queueing a recorded job again: which job a queue message is about, whether a
recorded payload is the one sent, and the dispatch message rebuilt from `JobDispatched`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.events import JobDispatched
from domain.queue import NotRequeueable, job_of_message, requeue_message
from domain.specs import holds_redactions, parse_job_spec, redacted_payload


def test_the_job_of_a_queue_message() -> None:
    assert job_of_message("baker.jobs.dispatch", b'{"id": "job-1"}') == "job-1"
    assert job_of_message("baker.jobs.dispatch.high", b'{"jobId": "job-2"}') == "job-2"
    assert job_of_message("baker.jobs.dispatch", b"not json") is None
    for kind in ("status", "result", "step"):
        assert job_of_message(f"baker.jobs.{kind}.job-3", b"") == "job-3"
    assert job_of_message("baker.jobs.output.job-4", b"") is None
    assert job_of_message("baker.tasks.status.t-1", b"") is None


ANT_KEY = "sk-ant-api03-" + "Zx9_-" * 19 + "AA"
GH_TOKEN = "ghp_" + "a1B2c3D4e5" * 4


@pytest.mark.parametrize(
    ("doc", "masked"),
    [
        ({"type": "command", "payload": {"command": "API_TOKEN=s3cr3t curl -s x"}}, True),
        ({"type": "command", "payload": {"command": "LANG=C ls -l"}}, False),
        # an argument, masked since values that look like credentials are (DESIGN §12)
        ({"type": "command", "payload": {"command": "echo PASSWORD=x"}}, True),
        ({"type": "command", "payload": {"command": "echo PASSWORD"}}, False),
        ({"type": "command", "payload": {"command": f"echo {ANT_KEY}"}}, True),
        ({"type": "http", "payload": {"url": "https://u:pw@x/a"}}, True),
        ({"type": "http", "payload": {"url": "https://x/a", "json": {"token": "t"}}}, True),
        ({"type": "http", "payload": {"url": "https://x/a", "json": {"tokens": "t"}}}, False),
        ({"type": "agent", "payload": {"prompt": f"use {GH_TOKEN} to read"}}, True),
        ({"type": "agent", "payload": {"prompt": "***bold*** A=*** Bearer"}}, False),
        ({"type": "http", "payload": {"url": "http://x", "headers": {"Authorization": "b"}}}, True),
        ({"type": "http", "payload": {"url": "http://x", "headers": {"Accept": "a/b"}}}, False),
        ({"type": "agent", "payload": {"prompt": "hi"}}, False),
    ],
)
def test_a_recorded_payload_says_whether_secrets_were_masked(
    doc: dict[str, object], masked: bool
) -> None:
    spec = parse_job_spec(doc)
    assert holds_redactions(spec.type, redacted_payload(spec)) is masked


def test_the_dispatch_message_is_rebuilt_from_the_event() -> None:
    created = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    event = JobDispatched(
        job_type="command", payload={"command": "echo hi"}, timeout_seconds=30,
        reply_to="baker.jobs.status.job-9", created_at=created,
    )  # fmt: skip
    msg = requeue_message("job-9", event)
    assert (msg.id, msg.type, msg.payload, msg.timeout_seconds) == (
        "job-9", "command", {"command": "echo hi"}, 30,
    )  # fmt: skip
    assert (msg.reply_to, msg.created_at) == ("baker.jobs.status.job-9", created)
    masked = JobDispatched(job_type="command", payload={"command": "API_KEY=*** echo"})
    with pytest.raises(NotRequeueable, match="secrets"):
        requeue_message("job-9", masked)
