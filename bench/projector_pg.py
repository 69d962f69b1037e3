"""Projector bench on PostgreSQL (DESIGN §13): `Projector.run` folding N events from a private
nats-server into a PostgreSQL read model, against raw psycopg writing the same rows in the
same run: for each batch of 1,000 events, one transaction writing its `job_events` rows, the
job rows it touched (an upsert) and its share of the `job_latency` rows, into the same tables
with the same indexes, once with `executemany` (pipeline mode) and once by COPY; the faster is
the baseline. The raw side
neither reads the stream nor folds (its rows are in memory): the ratio is what reading,
folding and our SQL cost on top of PostgreSQL's own writing. Also the rebuild's bulk mode
(`build` into a fresh generation). A database of its own on `BAKER_BENCH_POSTGRES`
(default: the local server), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import psycopg
from psycopg import sql

from adapters.nats.client import Client
from adapters.nats.connector import Options
from adapters.nats.event_store import JetStreamEventStore
from adapters.nats.streams import provision
from adapters.postgres.schema import PG_DDL
from adapters.postgres.store import PgStore
from bench.common import machine, markdown_table, median, private_nats_server, progress, save
from bench.projector import generate
from projections.jobs import EVENT_COLUMNS, JOB_COLUMNS
from services.bootstrap.parts import build_projector
from services.projector import ProjectorSettings
from services.rebuild import build
from services.tuning import tune_projector_threads

SERVER = os.environ.get("BAKER_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 1000


@contextmanager
def bench_database() -> Iterator[str]:
    name = f"baker_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{SERVER.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def projector(nc: Client, store: JetStreamEventStore, url: str, tag: str, upto: int) -> float:
    """The `baker projector` path on PostgreSQL: from an empty read model to `upto`."""
    began = time.perf_counter()
    p = build_projector(nc, store, PgStore(url, tag), ProjectorSettings())
    await p.open()
    stop = asyncio.Event()
    task = asyncio.create_task(p.run(stop))
    reached = await p.wait_for(upto, 3600)
    elapsed = time.perf_counter() - began
    stop.set()
    await task
    assert reached, "the projector did not reach the head"
    return upto / elapsed


async def bulk(store: JetStreamEventStore, url: str, tag: str, upto: int) -> float:
    """The rebuild's bulk mode: `build` into a fresh generation (no syncs, indexes after)."""
    rm = PgStore(url, tag)
    try:
        await rm.initialise()
        generation = await rm.next_generation()
        began = time.perf_counter()
        assert await build(store, rm, generation=generation, upto=upto) == upto
        return upto / (time.perf_counter() - began)
    finally:
        await rm.close()


Rows = list[tuple[Any, ...]]
Batches = list[tuple[Rows, Rows, Rows]]
LATENCY_COLUMNS = ("job_id", "phase", "type", "ms")


def rows_of(url: str, schema: str) -> Batches:
    """The rows the projector wrote, cut as it wrote them: per 1,000 events, their
    `job_events` rows, the job rows they touched and an even share of the `job_latency`
    rows (a phase's latency is written with the event that ends it)."""
    with psycopg.connect(url, options=f"-c search_path={schema}") as conn:
        events = conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM job_events ORDER BY seq")  # noqa: S608
        event_rows = events.fetchall()
        jobs = conn.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs")  # noqa: S608
        job_rows = {row[0]: row for row in jobs.fetchall()}
        latency = conn.execute(f"SELECT {', '.join(LATENCY_COLUMNS)} FROM job_latency")  # noqa: S608
        latency_rows = latency.fetchall()
    batches: Batches = []
    count = -(-len(event_rows) // BATCH)
    share = -(-len(latency_rows) // max(count, 1))
    for n, start in enumerate(range(0, len(event_rows), BATCH)):
        chunk = event_rows[start : start + BATCH]
        touched = dict.fromkeys(row[1] for row in chunk)
        phases = latency_rows[n * share : (n + 1) * share]
        batches.append((chunk, [job_rows[j] for j in touched], phases))
    return batches


def _raw_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(f"SET search_path = {schema}")
    for statement in PG_DDL:
        conn.execute(statement)


def _upsert_jobs(source: str) -> str:
    sets = ", ".join(f"{c} = excluded.{c}" for c in JOB_COLUMNS[1:])
    return f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) {source} ON CONFLICT (id) DO UPDATE SET {sets}"  # noqa: E501


def raw_insert(url: str, schema: str, batches: Batches) -> float:
    """Plain psycopg: the same rows, one transaction per batch, `executemany` each table."""
    events = sum(len(chunk) for chunk, _, _ in batches)
    with psycopg.connect(url, autocommit=True) as conn:
        _raw_schema(conn, schema)
        marks = ", ".join(["%s"] * len(EVENT_COLUMNS))
        insert_events = f"INSERT INTO job_events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})"  # noqa: S608
        upsert_jobs = _upsert_jobs(f"VALUES ({', '.join(['%s'] * len(JOB_COLUMNS))})")
        insert_latency = (
            f"INSERT INTO job_latency ({', '.join(LATENCY_COLUMNS)}) VALUES (%s, %s, %s, %s)"  # noqa: S608
        )
        began = time.perf_counter()
        with conn.cursor() as cur:
            for chunk, jobs, phases in batches:
                with conn.transaction():
                    cur.executemany(insert_events, chunk)
                    cur.executemany(upsert_jobs, jobs)
                    cur.executemany(insert_latency, phases)
        return events / (time.perf_counter() - began)


def _numbered(n: int) -> str:
    return ", ".join(f"${i}" for i in range(1, n + 1))


async def raw_asyncpg(url: str, schema: str, batches: Batches) -> float:
    """Plain asyncpg: the same rows, one transaction per batch, `executemany` each table
    (asyncpg pipelines a prepared statement's rows in its binary protocol)."""
    events = sum(len(chunk) for chunk, _, _ in batches)
    with psycopg.connect(url, autocommit=True) as setup:
        _raw_schema(setup, schema)
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        insert_events = f"INSERT INTO job_events ({', '.join(EVENT_COLUMNS)}) VALUES ({_numbered(len(EVENT_COLUMNS))})"  # noqa: E501, S608
        upsert_jobs = _upsert_jobs(f"VALUES ({_numbered(len(JOB_COLUMNS))})")
        insert_latency = (
            f"INSERT INTO job_latency ({', '.join(LATENCY_COLUMNS)}) VALUES ($1, $2, $3, $4)"  # noqa: S608
        )
        began = time.perf_counter()
        for chunk, jobs, phases in batches:
            async with conn.transaction():
                await conn.executemany(insert_events, chunk)
                await conn.executemany(upsert_jobs, jobs)
                await conn.executemany(insert_latency, phases)
        return events / (time.perf_counter() - began)
    finally:
        await conn.close()


def raw_copy(url: str, schema: str, batches: Batches) -> float:
    """Plain psycopg: the same rows by COPY, one transaction per batch (`job_events` straight
    in; the job rows into a temporary table, then one upsert from it)."""
    events = sum(len(chunk) for chunk, _, _ in batches)
    with psycopg.connect(url, autocommit=True) as conn:
        _raw_schema(conn, schema)
        upsert_jobs = _upsert_jobs("SELECT * FROM jobs_in")
        began = time.perf_counter()
        with conn.cursor() as cur:
            for chunk, jobs, phases in batches:
                with conn.transaction():
                    with cur.copy(
                        f"COPY job_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
                    ) as copy:
                        for row in chunk:
                            copy.write_row(row)
                    cur.execute("CREATE TEMP TABLE jobs_in (LIKE jobs) ON COMMIT DROP")
                    with cur.copy(f"COPY jobs_in ({', '.join(JOB_COLUMNS)}) FROM STDIN") as copy:
                        for row in jobs:
                            copy.write_row(row)
                    cur.execute(upsert_jobs)
                    with cur.copy(
                        f"COPY job_latency ({', '.join(LATENCY_COLUMNS)}) FROM STDIN"
                    ) as copy:
                        for row in phases:
                            copy.write_row(row)
        return events / (time.perf_counter() - began)


MEASURES = ("raw_executemany", "raw_asyncpg", "raw_copy", "projector", "rebuild_bulk")


async def run(
    rounds: int = 3, events: int = 20_000, *, save_as: str | None = "projector_pg"
) -> dict[str, Any]:
    """`save_as=None` for a trial run that must not replace the recorded results."""
    samples: dict[str, list[float]] = {name: [] for name in MEASURES}
    tune_projector_threads()  # as `baker projector` runs
    with private_nats_server() as server, bench_database() as url:
        ours = await Client.connect(Options(url=server.url, name="bench-projector-pg"))
        await provision(ours)
        store = JetStreamEventStore(ours)
        progress(f"generating {events:,} events through the event store")
        head = await generate(store, events, "p")
        for r in range(rounds):
            progress(f"round {r + 1}/{rounds}")
            tag = f"bench_r{r}"
            samples["projector"].append(await projector(ours, store, url, tag, head))
            batches = rows_of(url, f"{tag}_g1")
            many = functools.partial(raw_insert, url, f"raw_r{r}", batches)
            copied = functools.partial(raw_copy, url, f"copy_r{r}", batches)
            measures: list[tuple[str, Callable[[], Awaitable[float]]]] = [
                ("raw_executemany", functools.partial(asyncio.to_thread, many)),
                ("raw_asyncpg", functools.partial(raw_asyncpg, url, f"apg_r{r}", batches)),
                ("raw_copy", functools.partial(asyncio.to_thread, copied)),
                ("rebuild_bulk", functools.partial(bulk, store, url, f"{tag}_bulk", head)),
            ]
            turn = r % len(measures)  # a different one goes first each round
            for name, measure in measures[turn:] + measures[:turn]:
                samples[name].append(await measure())
        await store.close()
        await ours.close()
    med = {k: median(v) for k, v in samples.items()}
    # The baseline: a raw batched insert of the same rows, psycopg's or asyncpg's,
    # whichever is faster. COPY (a bulk load, not an insert) is reported beside it.
    baseline = max(med["raw_executemany"], med["raw_asyncpg"])
    doc = {
        "bench": "projector_pg", "machine": machine(), "rounds": rounds, "events": head,
        "samples": samples, "median": med, "baseline": baseline,
        "ratio": med["projector"] / baseline, "copy_ratio": med["projector"] / med["raw_copy"],
        "bulk_ratio": med["rebuild_bulk"] / med["raw_copy"],
        "switch_interval": sys.getswitchinterval(), "targets": {"ratio": 0.6},
    }  # fmt: skip
    if save_as:
        save(save_as, doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    m = doc["median"]
    best = "psycopg" if m["raw_executemany"] >= m["raw_asyncpg"] else "asyncpg"
    rows = [
        ("raw psycopg batched insert: the projector's rows, 1,000 events a transaction, `executemany` (pipeline mode) of `job_events` + job upserts + `job_latency`, same tables and indexes",  # noqa: E501
         f"{m['raw_executemany']:,.0f} events/s", "baseline" if best == "psycopg" else ""),
        ("raw asyncpg batched insert: the same rows and transactions, `executemany`",
         f"{m['raw_asyncpg']:,.0f} events/s", "baseline" if best == "asyncpg" else ""),
        ("raw psycopg bulk load: the same rows by COPY (`job_events` and `job_latency` straight in, job rows via a temporary table and one upsert)",  # noqa: E501
         f"{m['raw_copy']:,.0f} events/s", "for reference"),
        ("ours: `baker projector` path on PostgreSQL (`Projector.run`: reads the stream, decodes, folds each batch while the one before is written, batches of 1,000 or 5 ms, checkpoint in each transaction under the writers' lock)",  # noqa: E501
         f"{m['projector']:,.0f} events/s",
         f"**{doc['ratio']:.0%}** of the faster batched insert (target ≥ 60%); "
         f"{doc['copy_ratio']:.0%} of COPY"),
        ("ours: rebuild bulk mode on PostgreSQL (`build` into a fresh generation: no synchronous commit, indexes after)",  # noqa: E501
         f"{m['rebuild_bulk']:,.0f} events/s", f"{doc['bulk_ratio']:.0%} of COPY"),
    ]  # fmt: skip
    table = markdown_table(rows, ("measure", "result", "note"))
    return f"{table}\n\n{doc['events']:,} events; medians of {doc['rounds']} rounds."
