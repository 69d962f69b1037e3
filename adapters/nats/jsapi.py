"""JetStream's management API over our client: JSON requests on `$JS.API.…` subjects.

Only what the adapters need (streams and consumers by their server-side JSON config); the
configs are the server's own field names, so nothing is translated on the way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from adapters.nats.errors import NatsError
from adapters.nats.message import JetStreamError, Msg

if TYPE_CHECKING:
    from adapters.nats.client import Client

API = "$JS.API"
NOT_FOUND = (10059, 10014, 10037)  # stream, consumer, message not found


async def api(client: Client, subject: str, body: dict[str, Any] | None = None) -> Any:
    """The answer to one API request, or `JetStreamError` with the server's error."""
    payload = orjson.dumps(body) if body is not None else b""
    msg = await client.request(f"{API}.{subject}", payload, timeout=5.0)
    try:
        answer: dict[str, Any] = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        raise NatsError(f"{subject}: not a JetStream API answer: {msg.data[:200]!r}") from None
    error = answer.get("error")
    if error:
        raise JetStreamError(
            subject,
            int(error.get("code", 0)),
            int(error.get("err_code", 0)),
            str(error.get("description")),
        )
    return answer


async def add_stream(client: Client, config: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = await api(client, f"STREAM.CREATE.{config['name']}", config)
    return info


async def stream_info(client: Client, stream: str) -> dict[str, Any]:
    info: dict[str, Any] = await api(client, f"STREAM.INFO.{stream}")
    return info


async def add_consumer(client: Client, stream: str, config: dict[str, Any]) -> str:
    """Create (or update) a consumer; its name (the server's, for an ephemeral one)."""
    name = config.get("durable_name") or config.get("name")
    subject = f"CONSUMER.CREATE.{stream}" + (f".{name}" if name else "")
    info = await api(client, subject, {"stream_name": stream, "config": config})
    return str(info["name"])


async def consumer_info(client: Client, stream: str, consumer: str) -> dict[str, Any]:
    info: dict[str, Any] = await api(client, f"CONSUMER.INFO.{stream}.{consumer}")
    return info


async def delete_consumer(client: Client, stream: str, consumer: str) -> None:
    await api(client, f"CONSUMER.DELETE.{stream}.{consumer}")


async def direct_get(client: Client, stream: str, query: dict[str, Any]) -> Msg | None:
    """One stored message by a direct get (`{"seq": n}`, `{"last_by_subj": s}`,
    `{"seq": n, "next_by_subj": s}`; the stream needs `allow_direct`), or None when there is
    none. Its headers carry `Nats-Sequence` and `Nats-Subject` beside its own."""
    msg = await client.request(f"{API}.DIRECT.GET.{stream}", orjson.dumps(query), timeout=5.0)
    status = msg.status if msg.is_status else None
    if status == 404:
        return None
    if status is not None:
        raise JetStreamError(f"DIRECT.GET.{stream}", status, 0, msg.description or str(status))
    return msg
