"""Job specs: a discriminated union with errors that name the field; secrets stay out."""

from __future__ import annotations

import pytest

from domain.errors import FieldError
from domain.specs import (
    AgentJob,
    CommandJob,
    HttpJob,
    parse_job_spec,
    payload_document,
    redacted_payload,
    spec_warnings,
)


def test_each_type_parses_to_its_class() -> None:
    assert isinstance(parse_job_spec({"type": "agent", "payload": {"prompt": "hi"}}), AgentJob)
    assert isinstance(
        parse_job_spec({"type": "command", "payload": {"command": "df -h"}}), CommandJob
    )
    http = parse_job_spec(
        {
            "type": "http",
            "payload": {"url": "https://example.org", "method": "post", "json": {"a": 1}},
        }
    )
    assert isinstance(http, HttpJob)
    assert http.payload.method == "POST" and http.payload.json_body == {"a": 1}
    assert payload_document(http)["json"] == {"a": 1}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ([], "body"),
        ({"type": "shell", "payload": {}}, "type"),
        ({"payload": {}}, "type"),
        ({"type": "agent", "payload": {}}, "payload.prompt"),
        ({"type": "agent", "payload": {"prompt": "x" * 10_001}}, "payload.prompt"),
        ({"type": "agent", "payload": {"prompt": "x", "maxTokens": 0}}, "payload.maxTokens"),
        ({"type": "command", "payload": {"command": "   "}}, "payload.command"),
        ({"type": "command", "payload": {"command": "x" * 1025}}, "payload.command"),
        ({"type": "http", "payload": {"url": "file:///etc/passwd"}}, "payload.url"),
        ({"type": "http", "payload": {"url": "https://x", "method": "BREW"}}, "payload.method"),
        (
            {"type": "http", "payload": {"url": "https://x", "headers": {"a": 1}}},
            "payload.headers.a",
        ),
        ({"type": "command", "payload": {"command": "ls"}, "timeoutSeconds": 0}, "timeoutSeconds"),
        ({"type": "command", "payload": "ls"}, "payload"),
    ],
)
def test_bad_specs_name_the_field(doc: object, field: str) -> None:
    with pytest.raises(FieldError) as err:
        parse_job_spec(doc)
    assert err.value.field == field, str(err.value)


def test_secrets_are_redacted_for_events_but_kept_for_the_worker() -> None:
    http = parse_job_spec(
        {
            "type": "http",
            "payload": {
                "url": "https://x",
                "headers": {"Authorization": "Bearer s3cret", "Accept": "json"},
            },
        }
    )
    assert redacted_payload(http)["headers"] == {"Authorization": "***", "Accept": "json"}
    assert payload_document(http)["headers"]["Authorization"] == "Bearer s3cret"
    cmd = parse_job_spec(
        {"type": "command", "payload": {"command": "API_TOKEN=abc LANG=C curl -s x"}}
    )
    assert redacted_payload(cmd)["command"] == "API_TOKEN=*** LANG=C curl -s x"


def test_a_retired_model_is_passed_through_with_a_warning() -> None:
    job = parse_job_spec(
        {"type": "agent", "payload": {"prompt": "x", "model": "claude-sonnet-4-20250514"}}
    )
    assert job.payload.model == "claude-sonnet-4-20250514"  # type: ignore[union-attr]
    assert "end of life" in spec_warnings(job)[0]
    assert spec_warnings(parse_job_spec({"type": "agent", "payload": {"prompt": "x"}})) == []
