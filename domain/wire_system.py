"""Wire messages of the extensions registry and the health heartbeat (DESIGN §2): pure decoding.

Parsing is lenient (camelCase or snake_case; unknown fields kept in `model_extra`, never an
error) and values are strict: a bad one raises `WireError` naming the field. Ids that become
aggregate ids (an extension's `id`, a service's `instance`) must be single subject tokens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, Field, field_validator

from domain.wire import WireError, WireMessage, decode

__all__ = [
    "ExtensionAnnounce",
    "ExtensionDeregister",
    "ExtensionHeartbeat",
    "HealthHeartbeat",
    "WireError",
    "decode_announce",
    "decode_deregister",
    "decode_extension_heartbeat",
    "decode_health",
]

_ID = Field(min_length=1, max_length=128)
_NAME = Field(min_length=1, max_length=200)
_MAX_TOOLS = 1000


class ExtensionAnnounce(WireMessage):
    """`baker.extensions.announce`; upstream repeats it as its keepalive."""

    id: str = _ID
    name: str = _NAME
    version: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=4096)
    mcp_url: str = Field(
        validation_alias=AliasChoices("mcpUrl", "mcp_url", "mcpURL"), min_length=1, max_length=2048
    )
    tools: list[dict[str, Any]] | None = None

    @field_validator("mcp_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest or " " in value:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _tools(cls, value: Any) -> Any:
        # Upstream SDKs send tool definitions or bare names; both become {name, description?,
        # inputSchema?}, the shape the MCP `tools/list` answer has.
        if value is None:
            return None
        if not isinstance(value, list):
            raise ValueError("must be a list of tools")
        if len(value) > _MAX_TOOLS:
            raise ValueError(f"at most {_MAX_TOOLS} tools")
        return [normalize_tool(item) for item in value]


class ExtensionHeartbeat(WireMessage):
    """`baker.extensions.heartbeat` (or upstream's `baker.extensions.<id>.heartbeat`)."""

    id: str = _ID
    timestamp: datetime | None = None
    uptime: float | None = Field(default=None, ge=0)
    active_requests: int | None = Field(default=None, ge=0)


class ExtensionDeregister(WireMessage):
    """`baker.extensions.deregister`: a graceful shutdown."""

    id: str = _ID
    reason: str | None = Field(default=None, max_length=1024)


class HealthHeartbeat(WireMessage):
    """`baker.system.health`, as `services.heartbeat` publishes it."""

    service: str = Field(min_length=1, max_length=64)
    instance: str = _ID
    status: Literal["up", "stopping"] = "up"
    version: str | None = Field(default=None, max_length=64)
    uptime: float | None = Field(default=None, ge=0)
    timestamp: datetime | None = None
    details: dict[str, Any] = Field(default_factory=dict)


def normalize_tool(item: Any) -> dict[str, Any]:
    """One tool as `{name, description?, inputSchema?}`; `ValueError` if it has no usable name."""
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        raise ValueError("each tool must be an object or a name")
    name = item.get("name")
    if not isinstance(name, str) or not name or len(name) > 128:
        raise ValueError("each tool needs a name of 1-128 characters")
    tool: dict[str, Any] = {"name": name}
    description = item.get("description")
    if isinstance(description, str) and description:
        tool["description"] = description
    schema = item.get("inputSchema", item.get("input_schema", item.get("parameters")))
    if isinstance(schema, dict):
        tool["inputSchema"] = schema
    return tool


M = TypeVar("M", bound=WireMessage)


def _decode(kind: type[M], raw: bytes | str, id_field: str, default_id: str | None) -> M:
    defaults = {id_field: default_id} if default_id is not None else None
    try:
        msg = decode(kind, raw, id_field=id_field, defaults=defaults)
    except WireError as exc:
        # Aliases show up as the key the sender used; name the field as documented.
        if exc.field in ("mcp_url", "mcpURL"):
            raise WireError("mcpUrl", exc.reason) from None
        raise
    value = getattr(msg, id_field)
    if default_id is not None and value != default_id:
        raise WireError(id_field, f"{value!r} does not match the subject's {default_id!r}")
    return msg


def decode_announce(raw: bytes | str) -> ExtensionAnnounce:
    return _decode(ExtensionAnnounce, raw, "id", None)


def decode_extension_heartbeat(
    raw: bytes | str, subject_id: str | None = None
) -> ExtensionHeartbeat:
    """A heartbeat; on a per-id subject the body's id may be left out but must match if set."""
    return _decode(ExtensionHeartbeat, raw, "id", subject_id)


def decode_deregister(raw: bytes | str) -> ExtensionDeregister:
    return _decode(ExtensionDeregister, raw, "id", None)


def decode_health(raw: bytes | str) -> HealthHeartbeat:
    return _decode(HealthHeartbeat, raw, "instance", None)
