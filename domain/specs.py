"""Job specifications for `agent`, `command` and `http` jobs as a discriminated union."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from domain.errors import FieldError, first_error
from domain.labels import check_labels
from domain.redaction import REDACTED, holds_masks, redact_value

MAX_PROMPT_CHARS: Final = 10_000
MAX_COMMAND_CHARS: Final = 1024
MAX_TIMEOUT_SECONDS: Final = 86_400
HTTP_METHODS: Final = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Models that have reached end of life: still passed through, with a warning in the event.
RETIRED_MODELS: Final = {"claude-sonnet-4-20250514": "reached end of life on 2026-06-15"}

_SECRET_NAME = re.compile(r"(auth|token|secret|key|password|passwd|cookie|credential)", re.I)
__all__ = ["REDACTED"]  # re-exported: the marker of every masked value


class _Spec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class Budget(_Spec):
    """Limits of an agent job: it fails `budget_exceeded` before a model call passing one."""

    max_total_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)


AGENT_TOOLS: Final = ("command", "http")
DEFAULT_APPROVAL_TIMEOUT: Final = 86_400


class AgentPayload(_Spec):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    max_tokens: int | None = Field(default=None, ge=1, le=64_000)
    system: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    budget: Budget | None = None
    # tools whose calls wait for an operator's answer, and how long (default a day)
    approve: tuple[Literal["command", "http"], ...] | None = None
    approval_timeout_seconds: int | None = Field(default=None, ge=1, le=30 * 86_400)


class CommandPayload(_Spec):
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS)

    @field_validator("command")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty command")
        return value


class HttpPayload(_Spec):
    url: str = Field(min_length=1, max_length=4096)
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        method = value.upper()
        if method not in HTTP_METHODS:
            raise ValueError(f"must be one of {', '.join(HTTP_METHODS)}")
        return method


MAX_IDEMPOTENCY_KEY_CHARS: Final = 255
MAX_CONCURRENCY_KEY_CHARS: Final = 128
MAX_CONCURRENCY_LIMIT: Final = 10_000
MAX_ATTEMPTS: Final = 100
MAX_DELAY_SECONDS: Final = 30 * 86_400


class RetryPolicy(_Spec):
    """How a failed attempt is retried (DESIGN §11): attempt n+1 waits
    `min(initialSeconds * multiplier**(n-1), maxSeconds)` after attempt n failed."""

    max_attempts: int = Field(ge=1, le=MAX_ATTEMPTS)
    initial_seconds: float = Field(default=1.0, ge=0, le=MAX_DELAY_SECONDS)
    multiplier: float = Field(default=2.0, ge=1, le=100)
    max_seconds: float = Field(default=3_600.0, ge=0, le=MAX_DELAY_SECONDS)

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_seconds < self.initial_seconds:
            raise ValueError("maxSeconds must be at least initialSeconds")
        return self


class _Job(_Spec):
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_SECONDS)
    labels: dict[str, str] | None = None  # checked by `domain.labels` before the model
    # A client's key for "this dispatch": a repeat within the TTL answers the first job.
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS
    )

    # DESIGN §11: at most `concurrency_limit` jobs of this key received or running at once
    concurrency_key: str | None = Field(
        default=None, min_length=1, max_length=MAX_CONCURRENCY_KEY_CHARS
    )
    concurrency_limit: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)

    @field_validator("idempotency_key", "concurrency_key")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not all("!" <= ch <= "~" for ch in value):
            raise ValueError("must be printable ASCII without spaces")
        return value

    # DESIGN §11: which lane the job is queued on (None: `normal`, as before)
    priority: Literal["high", "normal", "low"] | None = None
    retry: RetryPolicy | None = None
    run_at: AwareDatetime | None = None  # ISO-8601 with a zone: queued at that time
    delay_seconds: float | None = Field(default=None, ge=0, le=MAX_DELAY_SECONDS)

    @model_validator(mode="after")
    def _one_start(self) -> _Job:
        if self.run_at is not None and self.delay_seconds is not None:
            raise ValueError("give runAt or delaySeconds, not both")
        return self


class AgentJob(_Job):
    type: Literal["agent"]
    payload: AgentPayload


class CommandJob(_Job):
    type: Literal["command"]
    payload: CommandPayload


class HttpJob(_Job):
    type: Literal["http"]
    payload: HttpPayload


JobSpec = Annotated[AgentJob | CommandJob | HttpJob, Field(discriminator="type")]
_SPEC: TypeAdapter[AgentJob | CommandJob | HttpJob] = TypeAdapter(JobSpec)


def parse_job_spec(doc: Any) -> AgentJob | CommandJob | HttpJob:
    """Validate `{type, payload, timeoutSeconds?}`; raise `FieldError` naming the bad field."""
    if not isinstance(doc, dict):
        raise FieldError("body", "must be a JSON object")
    if doc.get("type") not in ("agent", "command", "http"):
        raise FieldError("type", "must be one of: agent, command, http")
    if doc.get("labels") is not None:
        check_labels(doc["labels"])  # names the bad label (`labels.team`)
    if doc.get("runAt") is not None and doc.get("delaySeconds") is not None:
        raise FieldError("delaySeconds", "give runAt or delaySeconds, not both")
    if doc.get("concurrencyLimit") is not None and doc.get("concurrencyKey") is None:
        raise FieldError("concurrencyKey", "is required with concurrencyLimit")
    try:
        return _SPEC.validate_python(doc)
    except ValidationError as exc:
        raise FieldError(*first_error(exc)) from None


def start_time(spec: AgentJob | CommandJob | HttpJob, now: datetime) -> datetime | None:
    """When a delayed job is to be queued (None: at once; a time already past is at once)."""
    due: datetime | None = spec.run_at
    if spec.delay_seconds is not None:
        due = now + timedelta(seconds=spec.delay_seconds)
    return due if due is not None and due > now else None


def retry_policy_document(spec: AgentJob | CommandJob | HttpJob) -> dict[str, Any] | None:
    """The retry policy as `JobDispatched` keeps it (camelCase), or None."""
    return None if spec.retry is None else spec.retry.model_dump(mode="json", by_alias=True)


def payload_document(spec: AgentJob | CommandJob | HttpJob) -> dict[str, Any]:
    """The payload as it travels on the wire (camelCase, nothing unset)."""
    return spec.payload.model_dump(mode="json", by_alias=True, exclude_none=True)


def redacted_payload(spec: AgentJob | CommandJob | HttpJob) -> dict[str, Any]:
    """The payload as events keep it: secret-looking headers and env assignments masked, and
    every value that looks like a credential (`domain.redaction`) in any field."""
    doc = payload_document(spec)
    if isinstance(spec, HttpJob):
        doc["headers"] = {
            k: (REDACTED if _SECRET_NAME.search(k) else v) for k, v in spec.payload.headers.items()
        }
    elif isinstance(spec, CommandJob):
        doc["command"] = redact_command(spec.payload.command)
    redacted: dict[str, Any] = redact_value(doc)
    return redacted


def holds_redactions(job_type: str, payload: dict[str, Any]) -> bool:
    """Whether a payload as stored in `JobDispatched` had values masked by `redacted_payload`
    (so it is not the payload that was sent)."""
    if holds_masks(payload):
        return True
    if job_type == "http":
        headers = payload.get("headers") or {}
        return isinstance(headers, dict) and REDACTED in headers.values()
    command = payload.get("command") if job_type == "command" else None
    if not isinstance(command, str):
        return False
    return any(word.partition("=")[2] == REDACTED for word in _assignments(command.split(" ")))


def _assignments(words: list[str]) -> list[str]:
    """The leading `NAME=value` words of a command line."""
    out = []
    for word in words:
        name, sep, _ = word.partition("=")
        if not sep or not name.replace("_", "").isalnum():
            break
        out.append(word)
    return out


def redact_command(command: str) -> str:
    """Mask the values of leading `SECRET_NAME=value` assignments in a command line."""
    words = command.split(" ")
    for i, word in enumerate(_assignments(words)):
        name = word.partition("=")[0]
        if _SECRET_NAME.search(name):
            words[i] = f"{name}={REDACTED}"
    return " ".join(words)


def spec_warnings(spec: AgentJob | CommandJob | HttpJob) -> list[str]:
    """Warnings worth keeping in the job's history (e.g. a retired model named explicitly)."""
    if isinstance(spec, AgentJob) and spec.payload.model in RETIRED_MODELS:
        model = spec.payload.model
        return [f"model {model} {RETIRED_MODELS[model]}; passed through as requested"]
    return []


def concurrency_of(spec: AgentJob | CommandJob | HttpJob) -> tuple[str | None, int | None]:
    """The job's concurrency key and its limit (1 when only the key is given), or (None, None)."""
    if spec.concurrency_key is None:
        return None, None
    return spec.concurrency_key, spec.concurrency_limit or 1
