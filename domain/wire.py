"""Wire messages of DESIGN §3: lenient parsing, strict values, pure encode/decode.

Parsing accepts camelCase or snake_case and the upstream repo's `jobId`; unknown fields are
kept (`extra`) so a newer sender never breaks an older reader. Values are checked strictly and
a bad one raises `WireError` naming the field.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Literal, TypeVar

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from domain.errors import FieldError, first_error
from domain.events.job import JobType
from domain.ids import InvalidId, check_id

WorkerStatus = Literal["received", "running", "completed", "failed", "cancelled"]
FinalStatus = Literal["completed", "failed", "cancelled"]
_ID = Field(validation_alias=AliasChoices("id", "jobId", "job_id"), min_length=1, max_length=128)


class WireError(FieldError):
    """A wire message that cannot be used; `field` names the culprit."""


class WireMessage(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def encode(self) -> bytes:
        """Bytes to publish: camelCase, unset fields left out."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class DispatchMessage(WireMessage):
    id: str = _ID
    type: JobType
    payload: dict[str, Any]
    reply_to: str | None = None
    created_at: datetime | None = None
    timeout_seconds: int | None = Field(default=None, ge=1, le=86_400)
    attempt: int | None = Field(default=None, ge=1)
    labels: dict[str, str] | None = None  # DESIGN §11; workers may ignore them
    priority: Literal["high", "normal", "low"] | None = None  # DESIGN §11; None: normal
    # DESIGN §11: for the Brain's concurrency gate; workers ignore them
    concurrency_key: str | None = None
    concurrency_limit: int | None = Field(default=None, ge=1)


class StatusMessage(WireMessage):
    id: str = _ID
    status: WorkerStatus
    progress: str | None = Field(default=None, max_length=8192)
    worker_id: str | None = Field(default=None, max_length=128)
    attempt: int | None = Field(default=None, ge=1, le=1000)
    timestamp: datetime | None = None
    error: str | None = None
    # The upstream repo puts the outcome into the terminal status: accept it there too.
    result: Any = None
    duration_ms: int | None = Field(default=None, ge=0)
    trace_id: str | None = None


class ResultMessage(WireMessage):
    id: str = _ID
    status: FinalStatus
    result: Any = None
    error: str | None = None
    duration_ms: int | None = Field(default=None, ge=0)
    worker_id: str | None = Field(default=None, max_length=128)
    attempt: int | None = Field(default=None, ge=1, le=1000)
    trace_id: str | None = None


M = TypeVar("M", bound=BaseModel)


def decode(
    kind: type[M],
    raw: bytes | str,
    *,
    id_field: str = "id",
    id_label: str | None = None,
    defaults: dict[str, Any] | None = None,
) -> M:
    """Parse and validate a wire message; raise `WireError` naming the bad field. The id in
    `id_field` (when the message has one) must be a single subject token; `defaults` fill keys
    the sender left out (e.g. an id taken from the subject)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError("body", f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise WireError("body", "must be a JSON object")
    for key, value in (defaults or {}).items():
        doc.setdefault(key, value)
    try:
        msg = kind.model_validate(doc)
    except ValidationError as exc:
        raise WireError(*first_error(exc)) from None
    if msg.model_extra:
        _drop_twins(msg.model_extra, doc, _names(kind))
    ident = getattr(msg, id_field, None)
    if isinstance(ident, str):
        label = id_label or id_field
        try:
            check_id(ident, label)
        except InvalidId as exc:
            raise WireError(label, str(exc).partition(": ")[2]) from None
    return msg


@functools.cache
def _names(kind: type[BaseModel]) -> dict[str, str]:
    """Every key a field of `kind` is read from (snake_case, camelCase, its other aliases),
    mapped to the field's camelCase name."""
    out: dict[str, str] = {}
    for name, info in kind.model_fields.items():
        camel = info.alias or to_camel(name)
        keys = {name, camel}
        if isinstance(info.validation_alias, AliasChoices):
            keys |= {c for c in info.validation_alias.choices if isinstance(c, str)}
        out |= dict.fromkeys(keys, camel)
    return out


def _drop_twins(extra: dict[str, Any], doc: dict[str, Any], names: dict[str, str]) -> None:
    """A field given under two of its names (`durationMs` and `duration_ms`) is read from one
    and the other would stay an unknown field, sent on as if it were the field: the same
    value twice is one field; two values are refused, naming it."""
    for key in [k for k in extra if k in names]:
        field = names[key]
        given = [k for k in doc if names.get(k) == field]
        if any(doc[k] != doc[key] for k in given):
            raise WireError(field, f"given twice with different values ({', '.join(given)})")
        del extra[key]


# A worker sends four of these per job: written straight from their fields (the bytes
# `StatusMessage(...).encode()` / `ResultMessage(...).encode()` would give, field order and
# all, tested), instead of building and serialising a model each time.
_UTC_Z = orjson.OPT_UTC_Z  # pydantic writes UTC as `Z`


def encode_status(
    job_id: str,
    status: WorkerStatus,
    *,
    worker_id: str | None = None,
    attempt: int | None = None,
    timestamp: datetime | None = None,
    progress: str | None = None,
    error: str | None = None,
    trace_id: str | None = None,
) -> bytes:
    """A worker's status message (DESIGN §3), camelCase, unset fields left out."""
    doc = _set_fields(
        id=job_id, status=status, progress=progress, workerId=worker_id, attempt=attempt,
        timestamp=timestamp, error=error, traceId=trace_id,
    )  # fmt: skip
    return orjson.dumps(doc, option=_UTC_Z)


def encode_result(
    job_id: str,
    status: FinalStatus,
    *,
    result: Any = None,
    error: str | None = None,
    duration_ms: int | None = None,
    worker_id: str | None = None,
    attempt: int | None = None,
    trace_id: str | None = None,
    reason: str | None = None,
    budget: dict[str, Any] | None = None,
) -> bytes:
    """A worker's result message (DESIGN §3); `reason` and `budget` (a failure's reason and
    the budget it passed, DESIGN §10) are fields the seed protocol does not know. A result
    orjson cannot write as it stands (say, a dict with int keys) goes through the model,
    which converts it."""
    doc = _set_fields(
        id=job_id, status=status, result=result, error=error, durationMs=duration_ms,
        workerId=worker_id, attempt=attempt, traceId=trace_id, reason=reason, budget=budget,
    )  # fmt: skip
    try:
        return orjson.dumps(doc, option=_UTC_Z)
    except TypeError:
        return ResultMessage(
            id=job_id,
            status=status,
            result=result,
            error=error,
            duration_ms=duration_ms,
            worker_id=worker_id,
            attempt=attempt,
            trace_id=trace_id,
            **_set_fields(reason=reason, budget=budget),
        ).encode()


def _set_fields(**fields: Any) -> dict[str, Any]:
    """The fields that are set, in the models' order (the keyword order)."""
    return {key: value for key, value in fields.items() if value is not None}


def peek_id(raw: bytes | str) -> str | None:
    """Best-effort job id of a message that failed to decode, so its job can be failed."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    for key in ("id", "jobId", "job_id"):
        value = doc.get(key)
        if isinstance(value, str):
            try:
                return check_id(value)
            except InvalidId:
                return None
    return None


def decode_dispatch(raw: bytes | str) -> DispatchMessage:
    return decode(DispatchMessage, raw)


def decode_status(raw: bytes | str) -> StatusMessage:
    return decode(StatusMessage, raw)


def decode_result(raw: bytes | str) -> ResultMessage:
    return decode(ResultMessage, raw)
