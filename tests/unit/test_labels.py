"""Labels (DESIGN §11): the spec's rules name the bad label, filters parse, the jobs projection
stores and indexes them, and `list_jobs` finds jobs by every label asked for."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from adapters.eventstore import InMemoryEventStore, StoredEvent
from adapters.sqlite import connect_writer, ensure_schema, open_db
from domain.errors import FieldError
from domain.events import Envelope, JobDispatched, encode_event
from domain.labels import MAX_LABELS, parse_filter, parse_filters
from domain.specs import AgentJob, CommandJob, HttpJob, parse_job_spec
from domain.wire import DispatchMessage
from projections import queries
from projections.engine import apply_batch, init_checkpoints
from projections.jobs import fold_job
from projections.schema import PROJECTIONS
from services.brain.dispatcher import Dispatcher
from services.brain.forks import Forks
from services.executor import CommandExecutor
from tests.fakes.jobqueue import FakeJobQueue

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def spec_with(labels: object) -> AgentJob | CommandJob | HttpJob:
    return parse_job_spec({"type": "command", "payload": {"command": "ls"}, "labels": labels})


def test_good_labels_are_kept_on_the_spec() -> None:
    labels = {"team": "infra", "app.example.com/tier": "web-1", "flag": ""}
    assert spec_with(labels).labels == labels


@pytest.mark.parametrize(
    ("labels", "field", "words"),
    [
        ({"bad key": "x"}, "labels.bad key", "label key"),
        ({"-team": "x"}, "labels.-team", "starting and ending"),
        ({"k" * 64: "x"}, "labels." + "k" * 64, "1-63"),
        ({"team": "has space"}, "labels.team", "no spaces"),
        ({"team": "v" * 129}, "labels.team", "at most 128"),
        ({"team": 7}, "labels.team", "must be a string"),
        ({f"k{i}": "v" for i in range(MAX_LABELS + 1)}, "labels", f"at most {MAX_LABELS}"),
        (["team"], "labels", "must be an object"),
    ],
)
def test_a_bad_label_is_refused_naming_it(labels: object, field: str, words: str) -> None:
    with pytest.raises(FieldError) as refused:
        spec_with(labels)
    assert refused.value.field == field
    assert words in refused.value.reason


def test_filters_parse_on_the_first_separator_and_name_their_field() -> None:
    assert parse_filter("team:infra") == ("team", "infra")
    assert parse_filter("url:a:b") == ("url", "a:b")
    assert parse_filter("team=infra", "=", "--label") == ("team", "infra")
    assert parse_filters(["a:1", "b:2", "a:1"]) == (("a", "1"), ("b", "2"))
    with pytest.raises(FieldError, match=r"^label: 'team' is not key:value"):
        parse_filter("team")
    with pytest.raises(FieldError) as refused:
        parse_filter("bad key=x", "=", "--label")
    assert refused.value.field == "--label"


def test_label_clauses_take_one_subquery_per_label() -> None:
    clauses = queries.label_clauses([("team", "infra"), ("env", "prod")])
    assert [v for _, v in clauses] == [("team", "infra"), ("env", "prod")]
    assert all(c.count("?") == 2 and "job_labels" in c for c, _ in clauses)


def test_labels_travel_on_the_wire_only_when_set() -> None:
    plain = DispatchMessage(id="job-1", type="command", payload={"command": "ls"})
    assert b"labels" not in plain.encode()
    labelled = DispatchMessage(
        id="job-1", type="command", payload={"command": "ls"}, labels={"team": "infra"}
    )
    assert b'"labels":{"team":"infra"}' in labelled.encode()


def dispatched(seq: int, job: str, labels: dict[str, str] | None) -> StoredEvent:
    data = JobDispatched(job_type="command", payload={"command": "ls"}, labels=labels)
    env = Envelope(f"e-{seq}", "job", job, 1, T0 + timedelta(seconds=seq), data)
    return StoredEvent(seq, f"baker.events.job.{job}", env, encode_event(env))


def test_the_fold_keeps_the_labels_on_the_row() -> None:
    item = dispatched(1, "job-a", {"team": "infra"})
    row = fold_job(None, item.envelope, item.seq).row
    assert queries.job_document(row)["labels"] == {"team": "infra"}
    bare = dispatched(2, "job-b", None)
    assert queries.job_document(fold_job(None, bare.envelope, 2).row)["labels"] is None


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    with contextlib.closing(connect_writer(tmp_path / "rm.db")) as writer:
        ensure_schema(writer)
        init_checkpoints(writer)
        apply_batch(
            writer,
            [
                dispatched(1, "job-a", {"team": "infra", "env": "prod"}),
                dispatched(2, "job-b", {"team": "infra", "env": "dev"}),
                dispatched(3, "job-c", {"team": "web", "env": "prod"}),
                dispatched(4, "job-d", None),
            ],
            dict.fromkeys(PROJECTIONS, 0),
        )
    conn = await open_db(tmp_path / "rm.db")
    yield conn
    await conn.close()


async def ids(db: aiosqlite.Connection, *labels: tuple[str, str], **kw: object) -> list[str]:
    page = await queries.list_jobs(db, queries.JobFilter(labels=labels, **kw))  # type: ignore[arg-type]
    return [j["id"] for j in page.jobs]


async def test_list_jobs_finds_jobs_carrying_every_label(db: aiosqlite.Connection) -> None:
    assert await ids(db) == ["job-d", "job-c", "job-b", "job-a"]
    assert await ids(db, ("team", "infra")) == ["job-b", "job-a"]
    assert await ids(db, ("team", "infra"), ("env", "prod")) == ["job-a"]
    assert await ids(db, ("team", "infra"), ("team", "web")) == []
    assert await ids(db, ("team", "nobody")) == []
    assert await ids(db, ("env", "prod"), status="dispatched", type="command") == [
        "job-c", "job-a",
    ]  # fmt: skip
    first = await queries.list_jobs(db, queries.JobFilter(limit=1, labels=(("env", "prod"),)))
    rest = await queries.list_jobs(
        db, queries.JobFilter(limit=1, cursor=first.next, labels=(("env", "prod"),))
    )
    assert [j["id"] for j in first.jobs + rest.jobs] == ["job-c", "job-a"]
    async with db.execute("SELECT count(*) FROM job_labels") as cur:
        assert await cur.fetchone() == (6,)


async def test_a_rerun_keeps_the_labels_but_not_the_idempotency_key() -> None:
    store = InMemoryEventStore()
    dispatcher = Dispatcher(CommandExecutor(store), FakeJobQueue())
    doc = {"type": "command", "payload": {"command": "ls"}, "labels": {"team": "infra"},
           "idempotencyKey": "k-1"}  # fmt: skip
    source = await dispatcher.dispatch(parse_job_spec(doc))
    again = await Forks(dispatcher).rerun(source.job_id)
    first = (await store.load("job", again.job_id)).events[0].envelope.data
    assert isinstance(first, JobDispatched)
    assert (first.labels, first.idempotency_key, first.rerun_of) == (
        {"team": "infra"}, None, source.job_id,
    )  # fmt: skip
