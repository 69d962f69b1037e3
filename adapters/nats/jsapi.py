"""JetStream's management API over our client: JSON requests on `$JS.API.…` subjects.

Only what the adapters need (streams, consumers, stored messages by their server-side JSON);
the configs are the server's own field names, so nothing is translated on the way. An answer
with an error raises `JetStreamError` (`NotFound` for the 404s: no such stream, consumer or
message).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from adapters.nats import protocol
from adapters.nats.errors import (
    ConnectionLost,
    NatsError,
    NoResponders,
    OutboundBufferFull,
    RequestTimeout,
)
from adapters.nats.message import JetStreamError, Msg

if TYPE_CHECKING:
    from adapters.nats.client import Client

API = "$JS.API"
TIMEOUT = 5.0
T = TypeVar("T")


class NotFound(JetStreamError):
    """No such stream, consumer or message (JetStream's 404)."""


@dataclass(frozen=True, slots=True)
class StoredMsg:
    """A message as the stream keeps it."""

    subject: str
    seq: int
    data: bytes
    headers: dict[str, str]


async def api(
    client: Client, subject: str, body: dict[str, Any] | None = None, *, timeout: float = TIMEOUT
) -> Any:
    """The answer to one API request, or `JetStreamError` with the server's error."""
    payload = orjson.dumps(body) if body is not None else b""
    msg = await client.request(f"{API}.{subject}", payload, timeout=timeout)
    try:
        answer: dict[str, Any] = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        raise NatsError(f"{subject}: not a JetStream API answer: {msg.data[:200]!r}") from None
    error = answer.get("error")
    if error:
        code = int(error.get("code", 0))
        kind = NotFound if code == 404 else JetStreamError
        raise kind(subject, code, int(error.get("err_code", 0)), str(error.get("description")))
    return answer


UNAVAILABLE = 503  # "JetStream system temporarily unavailable": no meta leader right now


async def patiently(call: Callable[[], Awaitable[T]], within: float) -> T:
    """`call()`, made again while JetStream cannot answer yet, for up to `within` seconds. On
    a cluster, a stream or consumer whose leader's node has just gone leaves its requests
    unanswered until the others elect a new one (seconds); so does the whole API while the
    meta group elects. Only for idempotent requests (info, create-or-compare)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            return await call()
        except (RequestTimeout, ConnectionLost, OutboundBufferFull, JetStreamError) as exc:
            # Not `NoResponders`: nobody at all serves the API (a server without JetStream),
            # which waiting does not mend.
            if isinstance(exc, JetStreamError) and exc.code != UNAVAILABLE:
                raise
            if loop.time() >= deadline:
                raise
        await asyncio.sleep(0.25)  # pacing the attempts while the cluster elects


async def add_stream(client: Client, config: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = await api(client, f"STREAM.CREATE.{config['name']}", config)
    return info


async def update_stream(client: Client, config: dict[str, Any]) -> dict[str, Any]:
    """Change an existing stream's configuration (the server refuses what cannot change)."""
    info: dict[str, Any] = await api(client, f"STREAM.UPDATE.{config['name']}", config)
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


async def get_msg(client: Client, stream: str, query: dict[str, Any]) -> StoredMsg | None:
    """A stored message through the stream leader (`{"seq": n}`, `{"last_by_subj": s}`,
    `{"seq": n, "next_by_subj": s}`): works on every stream, direct gets or not. None when
    there is none."""
    try:
        answer = await api(client, f"STREAM.MSG.GET.{stream}", query)
    except NotFound:
        return None
    stored = answer["message"]
    raw = base64.b64decode(stored["hdrs"]) if stored.get("hdrs") else b""
    data = base64.b64decode(stored["data"]) if stored.get("data") else b""
    return StoredMsg(stored["subject"], int(stored["seq"]), data, protocol.parse_headers(raw))


NO_MESSAGE_FOUND = 10057  # a delete of what a work queue has removed already (not a 404)


async def delete_msg(client: Client, stream: str, seq: int) -> bool:
    """Delete the message at `seq`; False when it is gone already."""
    try:
        await api(client, f"STREAM.MSG.DELETE.{stream}", {"seq": seq})
    except JetStreamError as exc:
        if isinstance(exc, NotFound) or exc.err_code == NO_MESSAGE_FOUND:
            return False
        raise
    return True


async def direct_get(client: Client, stream: str, query: dict[str, Any]) -> Msg | None:
    """One stored message by a direct get (`{"seq": n}`, `{"last_by_subj": s}`,
    `{"seq": n, "next_by_subj": s}`; the stream needs `allow_direct`), or None when there is
    none. Its headers carry `Nats-Sequence` and `Nats-Subject` beside its own."""
    msg = await client.request(f"{API}.DIRECT.GET.{stream}", orjson.dumps(query), timeout=TIMEOUT)
    status = msg.status if msg.is_status else None
    if status == 404:
        return None
    if status is not None:
        raise JetStreamError(f"DIRECT.GET.{stream}", status, 0, msg.description or str(status))
    return msg


async def direct_batch(
    client: Client, stream: str, query: dict[str, Any], timeout: float = TIMEOUT
) -> tuple[list[Msg], int]:
    """A batch direct get (`{"seq": n, "next_by_subj": s, "batch": k}`, or `multi_last`;
    nats-server 2.11+): the messages found, and how many more match after them (0: all
    were sent). The answer is several messages on one reply subject, then an end-of-batch
    status (204), or a 404 when nothing matches; `RequestTimeout` if the end never came."""
    loop = asyncio.get_running_loop()
    got: list[Msg] = []
    end: asyncio.Future[Msg] = loop.create_future()

    def collect(msg: Msg) -> None:
        if not msg.is_status:
            got.append(msg)
        elif not end.done():
            end.set_result(msg)

    inbox = client.new_inbox()
    sub = client.subscribe(inbox, collect)
    try:
        client.publish(f"{API}.DIRECT.GET.{stream}", orjson.dumps(query), reply=inbox)
        async with asyncio.timeout(timeout):
            status = await end
    except TimeoutError:
        raise RequestTimeout(f"DIRECT.GET.{stream}: no end of batch within {timeout}s") from None
    finally:
        sub.unsubscribe()
    code = status.status
    if code == 404:
        return [], 0
    if code == 503:
        raise NoResponders(f"DIRECT.GET.{stream}: no responders (does it allow direct gets?)")
    if code != 204:
        raise JetStreamError(f"DIRECT.GET.{stream}", code or 0, 0, status.description)
    return got, int(status.headers.get("Nats-Num-Pending", "0"))
