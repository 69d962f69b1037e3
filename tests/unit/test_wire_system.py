"""Extension and health wire messages: lenient parsing, strict values, errors naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from domain.wire_system import (
    WireError,
    decode_announce,
    decode_deregister,
    decode_extension_heartbeat,
    decode_health,
    normalize_tool,
)
from services.heartbeat import health_message

ANNOUNCE = {
    "id": "ext-weather",
    "name": "weather",
    "version": "1.2.0",
    "description": "forecasts",
    "mcpUrl": "http://ext-weather.bakerst.svc.cluster.local:8080/mcp",
}


def test_an_upstream_announce_parses_with_unknown_fields_kept() -> None:
    raw = {**ANNOUNCE, "transport": "streamable-http", "tags": ["x"]}
    msg = decode_announce(json.dumps(raw))
    assert (msg.id, msg.name, msg.version, msg.tools) == ("ext-weather", "weather", "1.2.0", None)
    assert msg.mcp_url.endswith("/mcp")
    assert msg.model_extra == {"transport": "streamable-http", "tags": ["x"]}


def test_snake_case_is_accepted_too() -> None:
    raw = {k: v for k, v in ANNOUNCE.items() if k != "mcpUrl"} | {"mcp_url": "https://e/mcp"}
    assert decode_announce(json.dumps(raw)).mcp_url == "https://e/mcp"
    beat = decode_extension_heartbeat(b'{"id": "e1", "active_requests": 2, "uptime": 1.5}')
    assert (beat.active_requests, beat.uptime) == (2, 1.5)
    beat = decode_extension_heartbeat(b'{"id": "e1", "activeRequests": 3}')
    assert beat.active_requests == 3


def test_announced_tools_are_normalized_from_definitions_or_names() -> None:
    tools = ["ping", {"name": "forecast", "description": "d", "parameters": {"type": "object"}}]
    msg = decode_announce(json.dumps({**ANNOUNCE, "tools": tools}))
    assert msg.tools == [
        {"name": "ping"},
        {"name": "forecast", "description": "d", "inputSchema": {"type": "object"}},
    ]
    assert normalize_tool({"name": "x", "inputSchema": {}, "annotations": {}}) == {
        "name": "x",
        "inputSchema": {},
    }


def test_heartbeat_timestamps_may_be_iso_or_epoch_milliseconds() -> None:
    iso = decode_extension_heartbeat(b'{"id": "e1", "timestamp": "2026-01-02T03:04:05Z"}')
    ms = decode_extension_heartbeat(b'{"id": "e1", "timestamp": 1767323045000}')
    assert iso.timestamp == ms.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_the_per_id_subject_supplies_a_missing_id_and_must_match_a_given_one() -> None:
    assert decode_extension_heartbeat(b'{"uptime": 3}', "ext-1").id == "ext-1"
    with pytest.raises(WireError) as err:
        decode_extension_heartbeat(b'{"id": "ext-2"}', "ext-1")
    assert err.value.field == "id" and "does not match" in err.value.reason


def test_deregister_needs_only_the_id() -> None:
    msg = decode_deregister(b'{"id": "ext-1"}')
    assert (msg.id, msg.reason) == ("ext-1", None)


def test_the_daemons_own_heartbeat_parses() -> None:
    raw = health_message("brain", "brain-1a2b", 0.0, {"ingested": 3}, status="stopping")
    msg = decode_health(raw)
    assert (msg.service, msg.instance, msg.status, msg.details) == (
        "brain",
        "brain-1a2b",
        "stopping",
        {"ingested": 3},
    )
    assert msg.version and msg.timestamp is not None


def _announce(**changes: object) -> bytes:
    doc: dict[str, object] = {**ANNOUNCE, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("raw", "field", "hint"),
    [
        (b"not json", "body", "not valid JSON"),
        (b"[1]", "body", "JSON object"),
        (_announce(id=None), "id", "required"),
        (_announce(id="ext.weather"), "id", "not a valid id"),
        (_announce(id="ext weather"), "id", "not a valid id"),
        (_announce(id=""), "id", "at least 1"),
        (_announce(name=7), "name", "valid string"),
        (_announce(version=None), "version", "required"),
        (_announce(mcpUrl=None), "mcpUrl", "required"),
        (_announce(mcpUrl="ftp://x/mcp"), "mcpUrl", "http"),
        (_announce(mcpUrl="weather"), "mcpUrl", "http"),
        (_announce(tools="ping"), "tools", "list"),
        (_announce(tools=[{"description": "no name"}]), "tools", "name"),
        (_announce(tools=[3]), "tools", "object or a name"),
    ],
)
def test_bad_announces_name_the_field(raw: bytes, field: str, hint: str) -> None:
    with pytest.raises(WireError) as err:
        decode_announce(raw)
    assert err.value.field == field
    assert hint in err.value.reason


@pytest.mark.parametrize(
    ("raw", "field", "hint"),
    [
        (b"{", "body", "not valid JSON"),
        (b'{"timestamp": "2026-01-01T00:00:00Z"}', "id", "required"),
        (b'{"id": 5}', "id", "valid string"),
        (b'{"id": "e>"}', "id", "not a valid id"),
        (b'{"id": "e1", "timestamp": "yesterday"}', "timestamp", "datetime"),
        (b'{"id": "e1", "uptime": -1}', "uptime", "greater than or equal"),
        (b'{"id": "e1", "activeRequests": "many"}', "activeRequests", "integer"),
    ],
)
def test_bad_heartbeats_name_the_field(raw: bytes, field: str, hint: str) -> None:
    with pytest.raises(WireError) as err:
        decode_extension_heartbeat(raw)
    assert err.value.field == field
    assert hint in err.value.reason


def test_bad_deregisters_name_the_field() -> None:
    with pytest.raises(WireError) as err:
        decode_deregister(b'{"reason": "bye"}')
    assert err.value.field == "id"


@pytest.mark.parametrize(
    ("doc", "field", "hint"),
    [
        ({"instance": "w-1"}, "service", "required"),
        ({"service": "worker"}, "instance", "required"),
        ({"service": "worker", "instance": "w.1"}, "instance", "not a valid id"),
        ({"service": "worker", "instance": "w-1", "status": "exploded"}, "status", "'up'"),
        ({"service": "worker", "instance": "w-1", "details": []}, "details", "dictionary"),
        ({"service": 1, "instance": "w-1"}, "service", "valid string"),
        ({"service": "worker", "instance": "w-1", "uptime": "long"}, "uptime", "number"),
    ],
)
def test_bad_health_heartbeats_name_the_field(
    doc: dict[str, object], field: str, hint: str
) -> None:
    with pytest.raises(WireError) as err:
        decode_health(json.dumps(doc))
    assert err.value.field == field
    assert hint in err.value.reason


def test_a_minimal_health_heartbeat_defaults_to_up() -> None:
    msg = decode_health(b'{"service": "worker", "instance": "w-1", "extra": 1}')
    assert (msg.status, msg.details, msg.model_extra) == ("up", {}, {"extra": 1})
