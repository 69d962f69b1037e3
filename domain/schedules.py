"""Which slot of a schedule is due (DESIGN §11), as pure functions of its state and the time.

A slot is a cron minute in the schedule's zone, or `created + k * everySeconds`. The slot to
fire at `now` is the latest one due after the last fired (or after the creation, or after a
resume: slots while paused are skipped, not missed); earlier slots due since then are missed
and fold into it, so a Brain that was down fires once on its return. The job of a slot has an
id derived from the schedule and the slot: dispatching it twice is dispatching it once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from domain.cron import parse_cron, zone_of
from domain.errors import FieldError
from domain.ids import InvalidId, check_id
from domain.specs import parse_job_spec, payload_document, redacted_payload

MAX_MISSED_COUNTED: Final = 10_000


@dataclass(frozen=True)
class Due:
    slot: datetime
    missed: int  # earlier slots folded into this one


def slot_job_id(name: str, slot: datetime) -> str:
    digest = hashlib.sha256(f"{name}|{slot.isoformat()}".encode()).hexdigest()
    return f"job-{digest[:16]}"


def _after(state: Any) -> datetime:
    points: list[datetime] = [p for p in (state.last_slot, state.resumed_at) if p is not None]
    created: datetime = state.created_at
    return max(points) if points else created


def next_slot(state: Any, after: datetime) -> datetime:
    """The first slot strictly after `after`."""
    if state.every_seconds:
        every = timedelta(seconds=state.every_seconds)
        steps = max(0, (after - state.created_at) // every) + 1
        return state.created_at + steps * every  # type: ignore[no-any-return]
    return parse_cron(state.cron).next_after(after, zone_of(state.timezone))


def due(state: Any, now: datetime) -> Due | None:
    """The slot to fire at `now`, if any (only an `active` schedule fires)."""
    if state.status != "active" or state.created_at is None:
        return None
    first = next_slot(state, _after(state))
    if first > now:
        return None
    if state.every_seconds:
        every = timedelta(seconds=state.every_seconds)
        latest = state.created_at + ((now - state.created_at) // every) * every
        return Due(latest, int((latest - first) // every))
    latest, missed = first, 0
    while missed < MAX_MISSED_COUNTED:
        following = next_slot(state, latest)
        if following > now:
            break
        latest, missed = following, missed + 1
    return Due(latest, missed)


def schedule_request(doc: Any) -> tuple[str, dict[str, Any]]:
    """(name, fields of `CreateSchedule`) from a request body `{name, cron | everySeconds,
    timezone?, job}`; `FieldError` naming the bad field."""
    if not isinstance(doc, dict):
        raise FieldError("body", "must be a JSON object")
    try:
        name = check_id(doc.get("name"), "name")  # type: ignore[arg-type]
    except InvalidId as exc:
        raise FieldError("name", str(exc).partition(": ")[2] or str(exc)) from None
    cron, every = doc.get("cron"), doc.get("everySeconds")
    if (cron is None) == (every is None):
        raise FieldError("cron", "give exactly one of cron and everySeconds")
    if cron is not None:
        if not isinstance(cron, str):
            raise FieldError("cron", "must be a string of 5 fields")
        parse_cron(cron)
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise FieldError("everySeconds", "must be an integer >= 1")
    zone = doc.get("timezone")
    if zone is not None and not isinstance(zone, str):
        raise FieldError("timezone", "must be an IANA zone name")
    zone_of(zone)
    return name, {"cron": cron, "every_seconds": every, "timezone": zone or "UTC",
                  "job": _job(doc.get("job"))}  # fmt: skip


def _job(doc: Any) -> dict[str, Any]:
    """The job spec as stored in `ScheduleCreated`: it lives in the event log forever, so a
    spec holding secrets (which the log never keeps) is refused rather than stored masked and
    then dispatched broken."""
    if not isinstance(doc, dict):
        raise FieldError("job", "must be a job spec object {type, payload, ...}")
    try:
        spec = parse_job_spec(doc)
    except FieldError as exc:
        raise FieldError(f"job.{exc.field}", exc.reason) from None
    if redacted_payload(spec) != payload_document(spec):
        raise FieldError(
            "job.payload",
            "holds secrets (credential headers, SECRET=value assignments or values that look "
            "like credentials), which the event log does not keep: give them to the workers "
            "through their environment",
        )
    stored: dict[str, Any] = {"type": spec.type, "payload": payload_document(spec)}
    if spec.timeout_seconds is not None:
        stored["timeoutSeconds"] = spec.timeout_seconds
    return stored
