"""Prometheus text for `/metrics`: durable counts from the read model, live gauges."""

from __future__ import annotations

from collections import Counter
from typing import Any

from projections import queries
from services.api.context import ApiContext


def _line(name: str, value: float, **labels: str) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, help_text: str, lines: list[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]


async def render(ctx: ApiContext, requests: Counter[tuple[str, int]]) -> str:
    db = await ctx.read_model.db()
    stats = await queries.job_stats(db)
    out: list[str] = []
    out += _family("baker_jobs_total", "gauge", "Jobs by type and current status (read model).", [
        _line("baker_jobs_total", n, type=t, status=s)
        for t, by_status in sorted(stats["counts"].items()) for s, n in sorted(by_status.items())
    ])  # fmt: skip
    lanes = await ctx.queue.lanes()
    pending = sum(lane.queued for lane in lanes.values())
    in_flight = sum(lane.in_flight for lane in lanes.values())
    out += _family(
        "baker_queue_depth",
        "gauge",
        "Jobs waiting for a worker.",
        [_line("baker_queue_depth", pending)],
    )
    out += _family(
        "baker_queue_in_flight",
        "gauge",
        "Jobs delivered to a worker, not yet acknowledged.",
        [_line("baker_queue_in_flight", in_flight)],
    )
    out += _family(
        "baker_queue_lane_depth",
        "gauge",
        "Jobs waiting for a worker, by priority lane.",
        [_line("baker_queue_lane_depth", s.queued, lane=lane) for lane, s in lanes.items()],
    )
    out += _family(
        "baker_queue_lane_in_flight",
        "gauge",
        "Jobs delivered to a worker, not yet acknowledged, by priority lane.",
        [_line("baker_queue_lane_in_flight", s.in_flight, lane=lane) for lane, s in lanes.items()],
    )
    out += _family(
        "baker_queue_paused",
        "gauge",
        "1 while the queue is paused (workers take no new jobs).",
        [_line("baker_queue_paused", int(any(s.paused for s in lanes.values())))],
    )
    async with db.execute(
        "SELECT concurrency_key, count(*) FROM jobs WHERE status = 'dispatched'"
        " AND wait_reason IS NOT NULL GROUP BY concurrency_key ORDER BY concurrency_key"
    ) as cur:
        held = [(str(key), int(n)) for key, n in await cur.fetchall()]
    out += _family(
        "baker_jobs_held",
        "gauge",
        "Queued jobs held because their concurrency key is at its limit (read model).",
        [_line("baker_jobs_held", n, key=key) for key, n in held],
    )
    applied, head = await ctx.read_model.applied(), await ctx.store.head_seq()
    out += _family(
        "baker_projector_lag_events",
        "gauge",
        "Events in the log not yet in the read model.",
        [_line("baker_projector_lag_events", max(0, head - applied))],
    )
    async with db.execute(
        "SELECT count(*) FROM job_events WHERE type = 'TransitionRejected'"
    ) as cur:
        (rejected,) = await cur.fetchone() or (0,)
    out += _family(
        "baker_rejected_transitions_total",
        "counter",
        "Rejected job transitions recorded in the log.",
        [_line("baker_rejected_transitions_total", rejected)],
    )
    async with db.execute("SELECT count(*) FROM dead_letters") as cur:
        (dead,) = await cur.fetchone() or (0,)
    out += _family(
        "baker_dead_letters_total",
        "counter",
        "Events the projections could not apply.",
        [_line("baker_dead_letters_total", dead)],
    )
    out += _family(
        "baker_malformed_messages_total",
        "counter",
        "Malformed messages, refused (terminated, or dropped), by the path that read them.",
        [
            _line("baker_malformed_messages_total", n, source=source)
            for source, n in sorted(malformed_by_source(ctx.counters()).items())
        ],
    )
    out += _family("baker_requests_total", "counter", "HTTP requests by route and status.", [
        _line("baker_requests_total", n, endpoint=path, status=str(code))
        for (path, code), n in sorted(requests.items())
    ])  # fmt: skip
    return "\n".join(out) + "\n"


def malformed_by_source(counters: dict[str, Any]) -> dict[str, int]:
    """`counters["malformed"]`: the job ingest's count, or {source: count} of every path."""
    malformed = counters.get("malformed", 0)
    if isinstance(malformed, dict):
        return {str(source): int(n) for source, n in malformed.items()} or {"ingest": 0}
    return {"ingest": int(malformed)}
