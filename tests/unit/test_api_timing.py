"""`POST /api/jobs` with a retry policy or a start time (DESIGN §11), in process: a bad one is a
400 naming its field and nothing is dispatched; a delayed job answers 202 `scheduled` and reads
back `scheduled` with its `runAt`, through the real dispatcher and store."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.eventstore.memory import InMemoryEventStore
from services.brain.dispatcher import Dispatcher
from services.executor import CommandExecutor
from tests.fakes.jobqueue import FakeJobQueue
from tests.unit.test_api_errors import JOB, RecordingDispatcher, api


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"retry": {"maxAttempts": "three"}}, "retry.maxAttempts"),
        ({"retry": 3}, "retry"),
        ({"runAt": "next tuesday"}, "runAt"),
        ({"delaySeconds": -5}, "delaySeconds"),
        ({"runAt": "2030-01-01T00:00:00Z", "delaySeconds": 5}, "delaySeconds"),
    ],
)
async def test_a_bad_retry_policy_or_start_is_a_400_naming_the_field(
    extra: dict[str, Any], field: str
) -> None:
    dispatcher = RecordingDispatcher()
    async with api(dispatcher) as c:
        answer = await c.post("/api/jobs", json={**JOB, **extra})
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field and field in answer.json()["error"]
    assert dispatcher.specs == []


async def test_a_delayed_job_is_accepted_as_scheduled_and_queued_later() -> None:
    store = InMemoryEventStore()
    queue = FakeJobQueue()
    dispatcher = Dispatcher(CommandExecutor(store), queue)
    body = {**JOB, "delaySeconds": 3600, "retry": {"maxAttempts": 2}}
    async with api(dispatcher, store) as c:
        answer = await c.post("/api/jobs", json=body)
    assert answer.status_code == 202 and answer.json()["status"] == "scheduled"
    history = await store.load("job", answer.json()["id"])
    assert history.state.status == "scheduled" and history.state.due_at is not None
    assert history.state.retry == {
        "maxAttempts": 2, "initialSeconds": 1.0, "multiplier": 2.0, "maxSeconds": 3600.0,
    }  # fmt: skip
    assert queue.jobs.messages == {}  # nothing queued before its time
