"""Task pods, pure parts: request validation, runner wire messages, the Kubernetes Job."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.errors import FieldError
from domain.lifecycle.task import MAX_TIMEOUT_SECONDS
from domain.tasks import (
    LaunchReply,
    LaunchRequest,
    TaskRequest,
    TaskResultMessage,
    TaskStatusMessage,
    decode,
    instructions_subject,
    job_manifest,
    job_name,
    parse_task_request,
    record_command,
    result_subject,
    status_subject,
)
from domain.wire import WireError


def test_a_minimal_request_gets_the_30_minute_default() -> None:
    request = parse_task_request({"goal": "df -h", "mode": "script"})
    assert request == TaskRequest(goal="df -h", mode="script", timeout_seconds=1800)
    assert MAX_TIMEOUT_SECONDS == 1800


def test_a_full_request_accepts_camel_and_snake_case_and_ignores_unknown_fields() -> None:
    camel = {"goal": "fix it", "mode": "agent", "toolbox": "k8s-tools", "timeoutSeconds": 60}
    snake = {"goal": "fix it", "mode": "agent", "toolbox": "k8s-tools", "timeout_seconds": 60}
    assert parse_task_request({**camel, "mounts": []}) == parse_task_request(snake)
    assert parse_task_request(camel).toolbox == "k8s-tools"


@pytest.mark.parametrize(
    ("doc", "field", "reason"),
    [
        ([], "body", "must be a JSON object"),
        ({"mode": "script"}, "goal", "is required"),
        ({"goal": "", "mode": "script"}, "goal", "at least 1 character"),
        ({"goal": "   ", "mode": "script"}, "goal", "must not be blank"),
        ({"goal": "x" * 10_001, "mode": "script"}, "goal", "at most 10000 characters"),
        ({"goal": "x"}, "mode", "must be one of: agent, script"),
        ({"goal": "x", "mode": "shell"}, "mode", "must be one of: agent, script"),
        ({"goal": "x", "mode": "script", "timeoutSeconds": 0}, "timeoutSeconds", "greater"),
        ({"goal": "x", "mode": "script", "timeoutSeconds": 1801}, "timeoutSeconds", "1800"),
        ({"goal": "x", "mode": "script", "timeoutSeconds": "60"}, "timeoutSeconds", "whole"),
        ({"goal": "x", "mode": "script", "timeoutSeconds": 6.5}, "timeoutSeconds", "whole"),
        ({"goal": "x", "mode": "script", "timeoutSeconds": True}, "timeoutSeconds", "whole"),
        ({"goal": "x", "mode": "agent", "toolbox": "a b"}, "toolbox", "letters, digits"),
        ({"goal": "x", "mode": "agent", "toolbox": "a.b.c/d"}, "toolbox", "letters, digits"),
        ({"goal": "x", "mode": "agent", "toolbox": 7}, "toolbox", "string"),
    ],
)
def test_bad_requests_name_the_field(doc: Any, field: str, reason: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_task_request(doc)
    assert info.value.field == field and reason in info.value.reason
    assert str(info.value).startswith(f"{field}: ")


def test_goal_of_exactly_10000_chars_and_timeout_bounds_are_accepted() -> None:
    assert parse_task_request({"goal": "x" * 10_000, "mode": "agent", "timeoutSeconds": 1})
    assert parse_task_request({"goal": "x", "mode": "agent", "timeoutSeconds": 1800})


def test_status_messages_are_lenient_in_shape_and_strict_in_values() -> None:
    raw = {"task_id": "task-1", "status": "progress", "type": "tool_call", "message": "m", "x": 1}
    msg = decode(TaskStatusMessage, json.dumps(raw))
    assert (msg.task_id, msg.status, msg.type, msg.message) == (
        "task-1",
        "progress",
        "tool_call",
        "m",
    )
    timestamped = decode(
        TaskStatusMessage,
        b'{"taskId": "task-1", "status": "running", "timestamp": "2026-01-01T00:00:00Z"}',
    )
    assert timestamped.timestamp == datetime(2026, 1, 1, tzinfo=UTC)
    assert json.loads(msg.encode()) == {
        "taskId": "task-1", "status": "progress", "type": "tool_call", "message": "m"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"nope", "body"),
        (b"[1]", "body"),
        (b'{"status": "running"}', "taskId"),
        (b'{"taskId": "a.b", "status": "running"}', "taskId"),
        (b'{"taskId": "t", "status": "received"}', "status"),
        (b'{"taskId": "t", "status": "progress", "type": "chatter"}', "type"),
        (b'{"taskId": "t", "status": "progress", "timestamp": "yesterday"}', "timestamp"),
    ],
)
def test_bad_status_messages_raise_wire_errors(raw: bytes, field: str) -> None:
    with pytest.raises(WireError) as info:
        decode(TaskStatusMessage, raw)
    assert info.value.field == field


def test_result_messages() -> None:
    msg = decode(
        TaskResultMessage,
        b'{"id": "task-1", "status": "timeout", "error": "late", "durationMs": 5, "files": []}',
    )
    assert (msg.task_id, msg.status, msg.error, msg.duration_ms) == ("task-1", "timeout", "late", 5)
    for bad, field in [
        (b'{"taskId": "t", "status": "running"}', "status"),
        (b'{"taskId": "t", "status": "completed", "durationMs": -1}', "durationMs"),
    ]:
        with pytest.raises(WireError) as info:
            decode(TaskResultMessage, bad)
        assert info.value.field == field


def test_messages_become_lifecycle_commands() -> None:
    progress = TaskStatusMessage(task_id="t", status="progress", type="thinking", message="hm")
    assert record_command(progress).status == "progress"
    assert record_command(progress).kind == "thinking"
    running = TaskStatusMessage(task_id="t", status="running", runner_id="r1")
    assert (record_command(running).kind, record_command(running).runner_id) == ("log", "r1")
    failed = TaskStatusMessage(task_id="t", status="failed", message="boom")
    assert record_command(failed).error == "boom"
    result = TaskResultMessage(task_id="t", status="completed", result={"a": 1}, duration_ms=3)
    cmd = record_command(result)
    assert (cmd.status, cmd.result, cmd.duration_ms) == ("completed", {"a": 1}, 3)
    assert record_command(TaskResultMessage(task_id="t", status="timeout")).status == "timeout"


def test_launch_messages_round_trip() -> None:
    deadline = datetime(2026, 1, 1, 12, tzinfo=UTC)
    request = LaunchRequest(
        task_id="task-1", goal="g", mode="script", timeout_seconds=5, deadline_at=deadline
    )
    assert decode(LaunchRequest, request.encode()) == request
    assert request.request() == TaskRequest(goal="g", mode="script", timeout_seconds=5)
    reply = decode(LaunchReply, b'{"ok": false, "launcher": "kubernetes", "error": "nope"}')
    assert (reply.ok, reply.launcher, reply.error) == (False, "kubernetes", "nope")
    with pytest.raises(WireError) as info:
        decode(LaunchReply, b'{"ok": true}')
    assert info.value.field == "launcher"


def test_subjects() -> None:
    assert status_subject("task-1") == "baker.tasks.status.task-1"
    assert result_subject("task-1") == "baker.tasks.result.task-1"
    assert instructions_subject("task-1") == "baker.tasks.instructions.task-1"
    with pytest.raises(ValueError, match="not a valid id"):
        status_subject("a.>")


def test_job_names_are_dns_labels_without_a_doubled_prefix() -> None:
    assert job_name("task-0123456789abcdef") == "task-0123456789abcdef"
    assert job_name("abc-123") == "task-abc-123"
    assert job_name("My_Task:7") == "task-my-task-7"
    assert len(job_name("x" * 128)) == 63


def manifest(**overrides: Any) -> dict[str, Any]:
    request = TaskRequest(goal="g", mode="agent", timeout_seconds=overrides.pop("timeout", 900))
    args: dict[str, Any] = {
        "task_id": "task-abc", "request": request, "image": "baker-street/task-runner:latest",
        "namespace": "baker-street-tasks", "nats_url": "nats://nats.baker-street:4222",
    }  # fmt: skip
    return job_manifest(**{**args, **overrides})


def test_the_job_manifest_has_the_digest_posture() -> None:
    job = manifest()
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    meta = job["metadata"]
    assert meta["name"] == "task-abc" and meta["namespace"] == "baker-street-tasks"
    assert meta["labels"]["baker.task-id"] == "task-abc"
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 900
    assert spec["ttlSecondsAfterFinished"] == 60
    assert spec["backoffLimit"] == 0
    template = spec["template"]
    assert template["metadata"]["labels"] == meta["labels"]
    pod = template["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False  # RBAC: none
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["image"] == "baker-street/task-runner:latest"
    sec = container["securityContext"]
    assert sec["runAsNonRoot"] is True and sec["runAsUser"] == 1000
    assert sec["readOnlyRootFilesystem"] is True
    assert sec["allowPrivilegeEscalation"] is False and sec["privileged"] is False
    assert sec["capabilities"] == {"drop": ["ALL"]}
    assert sec["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["env"] == [
        {"name": "NATS_URL", "value": "nats://nats.baker-street:4222"},
        {"name": "TASK_ID", "value": "task-abc"},
    ]
    # Read-only root, writable /tmp only.
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp" and "emptyDir" in pod["volumes"][0]


def test_the_manifest_follows_the_timeout_and_ttl_and_is_plain_json() -> None:
    job = manifest(timeout=1800, ttl=300)
    assert job["spec"]["activeDeadlineSeconds"] == 1800
    assert job["spec"]["ttlSecondsAfterFinished"] == 300
    assert json.loads(json.dumps(job)) == job
