"""The agent events in the `jobs` projection (DESIGN §10): the row's tokens, cost and steps,
approvals moving its status, and the `job_usage` read model with its query, on real SQLite."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from adapters.eventstore import StoredEvent
from adapters.sqlite import connect_writer, ensure_schema, open_db
from domain import events as ev
from domain.events import DomainEvent, Envelope, encode_event
from projections.engine import apply_batch, init_checkpoints
from projections.jobs import JobRow, fold_job
from projections.schema import KEYS, PROJECTIONS
from projections.usage import UsageFilter, usage, usage_day, usage_total

# 23:00 UTC: an hour later is the next UTC day, whatever the machine's time zone.
T0 = datetime(2026, 3, 1, 23, 0, 0, tzinfo=UTC)


def model_call(
    step: int, model: str, tokens: tuple[int, int, int, int], cost: float
) -> ev.AgentModelCalled:
    inp, out, cread, cwrite = tokens
    usage = ev.Usage(
        input_tokens=inp, output_tokens=out, cache_read_tokens=cread, cache_write_tokens=cwrite
    )
    return ev.AgentModelCalled(
        attempt=1, step=step, model=model, stop_reason="tool_use", usage=usage, cost_usd=cost
    )


def agent_job(model: str = "claude-sonnet-4-5") -> list[DomainEvent]:
    """An agent job: a model call, a tool call and its return, the final model call."""
    return [
        ev.JobDispatched(job_type="agent", payload={"prompt": "disk?"}),
        ev.JobReceived(worker_id="w-1", attempt=1),
        ev.JobStarted(worker_id="w-1", attempt=1),
        model_call(1, model, (100, 20, 1000, 50), 0.0123),
        ev.AgentToolCalled(attempt=1, step=2, tool_use_id="tu-1", tool="command", input={}),
        ev.AgentToolReturned(attempt=1, step=3, tool_use_id="tu-1", output="ok", duration_ms=4),
        model_call(4, model, (130, 10, 1000, 0), 0.0051),
        ev.JobCompleted(worker_id="w-1", attempt=1, result={"text": "fine"}),
    ]


def fold_all(events: list[DomainEvent], start: datetime = T0) -> JobRow:
    row: JobRow | None = None
    for version, event in enumerate(events, 1):
        env = Envelope(f"e{version}", "job", "job-1", version, start, event)
        row = fold_job(row, env, 100 + version).row
    assert row is not None
    return row


def test_an_agent_job_row_adds_up_its_tokens_cost_and_steps() -> None:
    row = fold_all(agent_job())
    assert row["status"] == "completed"
    assert (row["input_tokens"], row["output_tokens"]) == (230, 30)
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (2000, 50)
    assert row["cost_usd"] == 0.0174
    assert row["steps"] == 4
    assert row["version"] == 8


def test_an_approval_makes_the_job_wait_and_its_answer_queues_it_again() -> None:
    start = agent_job()[:4]
    asked = ev.AgentApprovalRequested(
        attempt=1, step=2, tool_use_id="tu-1", tool="command", input={"command": "df"}
    )
    waiting = fold_all([*start, asked])
    assert (waiting["status"], waiting["steps"]) == ("waiting", 2)
    granted = fold_all([*start, asked, ev.AgentApprovalGranted(tool_use_id="tu-1")])
    denied = fold_all([*start, asked, ev.AgentApprovalDenied(tool_use_id="tu-1", note="no")])
    assert granted["status"] == denied["status"] == "dispatched"
    resumed = fold_all(
        [*start, asked, ev.AgentApprovalGranted(tool_use_id="tu-1"),
         ev.JobReceived(worker_id="w-2", attempt=2)]
    )  # fmt: skip
    assert (resumed["status"], resumed["attempt"], resumed["worker_id"]) == ("received", 2, "w-2")


def test_a_budget_exceeded_changes_only_the_version_and_the_failure_says_why() -> None:
    start = agent_job()[:4]
    before = fold_all(start)
    exceeded = ev.JobBudgetExceeded(limit="maxCostUsd", allowed=0.01, used=0.0123, projected=0.02)
    after = fold_all([*start, exceeded])
    same = {k: v for k, v in after.items() if k not in ("version", "last_seq")}
    assert same == {k: v for k, v in before.items() if k not in ("version", "last_seq")}
    failed = fold_all(
        [*start, exceeded, ev.JobFailed(reason="budget_exceeded", error="budget", attempt=1)]
    )
    assert (failed["status"], failed["failure_reason"]) == ("failed", "budget_exceeded")


# ---------- the usage read model on a real SQLite file ----------


def stored(seq: int, job: str, version: int, event: DomainEvent, at: datetime) -> StoredEvent:
    env = Envelope(f"e-{seq}", "job", job, version, at, event)
    return StoredEvent(seq, f"baker.events.job.{job}", env, encode_event(env))


def history() -> list[StoredEvent]:
    """Two agent jobs on two models on 1 March, a third job the next UTC day, and a command
    job: 4 jobs, 5 model calls, interleaved as a real log is."""
    jobs = {
        "a-1": (agent_job("claude-sonnet-4-5"), T0),
        "a-2": (agent_job("claude-haiku-4-5"), T0 + timedelta(minutes=30)),
        "a-3": (agent_job("claude-sonnet-4-5")[:4], T0 + timedelta(hours=2)),
        "c-1": ([ev.JobDispatched(job_type="command", payload={"command": "ls"})], T0),
    }
    items: list[StoredEvent] = []
    longest = max(len(events) for events, _ in jobs.values())
    for version in range(1, longest + 1):
        for job, (events, at) in jobs.items():
            if version <= len(events):
                item = stored(len(items) + 1, job, version, events[version - 1], at)
                items.append(item)
    return items


@contextlib.contextmanager
def writer(path: Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(connect_writer(path)) as db:
        ensure_schema(db)
        init_checkpoints(db)
        yield db


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    with writer(tmp_path / "rm.db") as w:
        apply_batch(w, history(), dict.fromkeys(PROJECTIONS, 0))
    conn = await open_db(tmp_path / "rm.db")
    yield conn
    await conn.close()


def table(path: Path, name: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        order = ", ".join(KEYS[name])
        return list(db.execute(f"SELECT * FROM {name} ORDER BY {order}"))


def test_usage_rows_do_not_depend_on_how_the_log_was_batched(tmp_path: Path) -> None:
    items = history()
    with writer(tmp_path / "one.db") as w:
        apply_batch(w, items, dict.fromkeys(PROJECTIONS, 0))
    with writer(tmp_path / "each.db") as w:
        checkpoints = dict.fromkeys(PROJECTIONS, 0)
        for item in items:
            checkpoints = apply_batch(w, [item], checkpoints).checkpoints
    for name in ("jobs", "job_usage", "job_stats"):
        assert table(tmp_path / "one.db", name) == table(tmp_path / "each.db", name), name
    usage_rows = table(tmp_path / "one.db", "job_usage")
    assert [r[:4] for r in usage_rows] == [
        ("a-1", "claude-sonnet-4-5", "2026-03-01", "agent"),
        ("a-2", "claude-haiku-4-5", "2026-03-01", "agent"),
        ("a-3", "claude-sonnet-4-5", "2026-03-02", "agent"),
    ]
    # a-1: two calls folded into one row; columns after the key: type, tokens, cost, calls
    assert usage_rows[0][4:] == (230, 30, 2000, 50, 0.0174, 2)


async def test_usage_grouped_by_model_day_and_type(db: aiosqlite.Connection) -> None:
    by_model = await usage(db, UsageFilter("model"))
    assert [(r["key"], r["jobs"], r["calls"]) for r in by_model] == [
        ("claude-sonnet-4-5", 2, 3),  # highest cost first
        ("claude-haiku-4-5", 1, 2),
    ]
    assert by_model[0]["inputTokens"] == 330 and by_model[0]["costUsd"] == 0.0297
    by_day = await usage(db, UsageFilter("day"))
    assert [(r["key"], r["jobs"], r["costUsd"]) for r in by_day] == [
        ("2026-03-01", 2, 0.0348),
        ("2026-03-02", 1, 0.0123),
    ]
    by_type = await usage(db, UsageFilter("type"))
    assert [(r["key"], r["jobs"], r["outputTokens"]) for r in by_type] == [("agent", 3, 80)]
    total = await usage_total(db, UsageFilter("model"))
    assert (total["jobs"], total["calls"], total["costUsd"]) == (3, 5, 0.0471)


async def test_usage_between_days_inclusive(db: aiosqlite.Connection) -> None:
    only_second = await usage(db, UsageFilter("day", since="2026-03-02"))
    assert [r["key"] for r in only_second] == ["2026-03-02"]
    only_first = await usage(db, UsageFilter("model", until="2026-03-01"))
    assert sum(r["jobs"] for r in only_first) == 2
    assert await usage(db, UsageFilter("day", since="2026-04-01")) == []
    assert (await usage_total(db, UsageFilter(since="2026-04-01")))["jobs"] == 0


def test_usage_day_takes_a_date_or_a_time_as_its_utc_day() -> None:
    assert usage_day("2026-03-02", "since") == "2026-03-02"
    assert usage_day("2026-03-02T01:00:00+02:00", "since") == "2026-03-01"
    assert usage_day("2026-03-01T23:30:00Z", "until") == "2026-03-01"
    assert usage_day(None, "since") is None
    with pytest.raises(ValueError, match=r"until: 'yesterday' is not a date"):
        usage_day("yesterday", "until")


async def test_usage_refuses_a_grouping_it_does_not_have(db: aiosqlite.Connection) -> None:
    with pytest.raises(ValueError, match="groupBy: 'week'"):
        await usage(db, UsageFilter("week"))  # type: ignore[arg-type]
