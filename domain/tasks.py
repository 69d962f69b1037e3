"""Task pods, pure: the launch request, the runner's wire messages, launch messages, the K8s Job.

Wire messages follow `domain.wire`: camelCase or snake_case accepted, unknown fields ignored,
values checked strictly; a bad message raises `WireError` naming the field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from domain.commands import RecordTaskStatus
from domain.errors import FieldError, first_error
from domain.ids import check_id
from domain.lifecycle.task import MAX_TIMEOUT_SECONDS
from domain.wire import decode as wire_decode

TaskMode = Literal["agent", "script"]
ProgressKind = Literal["log", "tool_call", "thinking", "milestone"]
RunnerStatus = Literal["running", "progress", "completed", "failed"]
ResultStatus = Literal["completed", "failed", "timeout"]
MAX_GOAL_CHARS: Final = 10_000
MAX_MESSAGE_CHARS: Final = 8192
LAUNCH_SUBJECT: Final = "baker.tasks.launch"
LAUNCHER_QUEUE: Final = "launchers"
RUNNER_UID: Final = 1000
_TOOLBOX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_DNS_BAD = re.compile(r"[^a-z0-9-]+")
_TASK_ID = Field(
    validation_alias=AliasChoices("taskId", "task_id", "id"), min_length=1, max_length=128
)


def status_subject(task_id: str) -> str:
    return f"baker.tasks.status.{check_id(task_id, 'task id')}"


def result_subject(task_id: str) -> str:
    return f"baker.tasks.result.{check_id(task_id, 'task id')}"


def instructions_subject(task_id: str) -> str:
    """Where a runner asks for its instructions (core request/reply, answered by launchers)."""
    return f"baker.tasks.instructions.{check_id(task_id, 'task id')}"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    def encode(self) -> bytes:
        """Bytes to publish: camelCase, unset fields left out."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class TaskRequest(_Model):
    """`POST /api/tasks` body: `{goal, mode, toolbox?, timeoutSeconds?}`."""

    goal: str = Field(min_length=1, max_length=MAX_GOAL_CHARS)
    mode: TaskMode
    toolbox: str | None = None
    timeout_seconds: int = Field(default=MAX_TIMEOUT_SECONDS, ge=1, le=MAX_TIMEOUT_SECONDS)

    @field_validator("goal")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("toolbox")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and not _TOOLBOX.match(value):
            raise ValueError("must be 1-64 letters, digits, '_', '.', '-'")
        return value

    @field_validator("timeout_seconds", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number of seconds")
        return value


def parse_task_request(doc: Any) -> TaskRequest:
    """Validate a task request; raise `FieldError` naming the bad field."""
    if not isinstance(doc, dict):
        raise FieldError("body", "must be a JSON object")
    if doc.get("mode") not in ("agent", "script"):
        raise FieldError("mode", "must be one of: agent, script")
    try:
        return TaskRequest.model_validate(doc)
    except ValidationError as exc:
        raise FieldError(*first_error(exc)) from None


class TaskStatusMessage(_Model):
    """Runner → Brain on `baker.tasks.status.<taskId>`."""

    task_id: str = _TASK_ID
    status: RunnerStatus
    type: ProgressKind | None = None
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    timestamp: datetime | None = None
    runner_id: str | None = Field(default=None, max_length=128)


class TaskResultMessage(_Model):
    """Runner → Brain on `baker.tasks.result.<taskId>`."""

    task_id: str = _TASK_ID
    status: ResultStatus
    result: Any = None
    error: str | None = None
    duration_ms: int | None = Field(default=None, ge=0)
    runner_id: str | None = Field(default=None, max_length=128)


class LaunchRequest(_Model):
    """Brain → launcher on `baker.tasks.launch`; also the runner's instructions."""

    task_id: str = _TASK_ID
    goal: str = Field(min_length=1, max_length=MAX_GOAL_CHARS)
    mode: TaskMode
    toolbox: str | None = None
    timeout_seconds: int = Field(ge=1, le=MAX_TIMEOUT_SECONDS)
    deadline_at: datetime
    traceparent: str | None = None

    def request(self) -> TaskRequest:
        return TaskRequest(
            goal=self.goal,
            mode=self.mode,
            toolbox=self.toolbox,
            timeout_seconds=self.timeout_seconds,
        )


class LaunchReply(_Model):
    """Launcher → Brain: accepted (with the runner's id) or refused (with the reason)."""

    ok: bool
    launcher: str = Field(min_length=1, max_length=64)
    error: str | None = None
    runner_id: str | None = Field(default=None, max_length=253)


class StopReply(_Model):
    """Launcher → Brain, on `baker.tasks.cancel.<taskId>`: it stopped the task's runner
    (`ok`, with a detail) or tried and failed (`error`)."""

    ok: bool
    launcher: str
    detail: str = ""
    error: str | None = None


M = TypeVar("M", bound=_Model)


def decode(kind: type[M], raw: bytes | str) -> M:
    """Parse and validate one task message; raise `WireError` naming the bad field."""
    return wire_decode(kind, raw, id_field="task_id", id_label="taskId")


def record_command(msg: TaskStatusMessage | TaskResultMessage) -> RecordTaskStatus:
    """The lifecycle command for a runner's status or result message."""
    if isinstance(msg, TaskResultMessage):
        return RecordTaskStatus(
            status=msg.status,
            result=msg.result,
            error=msg.error,
            duration_ms=msg.duration_ms,
            runner_id=msg.runner_id,
        )
    return RecordTaskStatus(
        status=msg.status,
        message=msg.message,
        kind=msg.type or "log",
        error=msg.message if msg.status == "failed" else None,
        runner_id=msg.runner_id,
    )


def job_name(task_id: str) -> str:
    """A DNS-1123 Job name `task-<id>` (no doubled prefix), at most 63 characters."""
    slug = _DNS_BAD.sub("-", task_id.lower()).strip("-")
    name = slug if slug.startswith("task-") else f"task-{slug}"
    return name[:63].rstrip("-")


def job_manifest(
    task_id: str,
    request: TaskRequest,
    image: str,
    namespace: str,
    nats_url: str,
    ttl: int = 60,
) -> dict[str, Any]:
    """The batch/v1 Job of one task pod, with the digest's security posture (§4)."""
    name = job_name(task_id)
    labels = {
        "app.kubernetes.io/name": "baker-task",
        "app.kubernetes.io/part-of": "baker-street",
        "app.kubernetes.io/managed-by": "baker-launcher",
        "baker.task-id": name,
        "baker.task-mode": request.mode,
    }
    no_privileges = {
        "runAsNonRoot": True,
        "runAsUser": RUNNER_UID,
        "runAsGroup": RUNNER_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "name": "task-runner",
        "image": image,
        "env": [{"name": "NATS_URL", "value": nats_url}, {"name": "TASK_ID", "value": task_id}],
        "securityContext": no_privileges,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - the pod's own
    }
    pod_spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "activeDeadlineSeconds": request.timeout_seconds,
            "ttlSecondsAfterFinished": ttl,
            "backoffLimit": 0,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
