"""The `http` executor: one request with httpx, bounded retries for idempotent methods only.

Redirects are not followed (a redirect could leave the host allowlist); the `location` header is
in the result instead. Header values are never logged: they may carry credentials.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.executors.base import Execution, Progress, no_progress
from domain.command_policy import cap_output, truncation_marker
from domain.specs import IDEMPOTENT_METHODS, HttpPayload

DEFAULT_HTTP_TIMEOUT = 30.0
MAX_BODY_BYTES = 64 * 1024
SELECTED_HEADERS = ("content-type", "content-length", "location", "etag", "retry-after", "date")
# Failures where the request cannot have reached the server, so a retry cannot repeat it.
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)


class HttpRejected(ValueError):
    """A request the policy refuses before anything is sent."""


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    size: int | None  # the whole body's size, when known
    complete: bool


async def run_http(
    payload: HttpPayload,
    *,
    client: httpx.AsyncClient | None = None,
    allowed_hosts: Iterable[str] | None = None,
    timeout: float | None = None,
    max_body: int = MAX_BODY_BYTES,
    retries: int = 2,
    backoff: float = 0.2,
    progress: Progress = no_progress,
) -> Execution:
    """Send the payload's request; `ok` is a status below 400. Failures are `ok=False`."""
    try:
        url = check_url(payload.url, allowed_hosts)
    except HttpRejected as exc:
        return Execution(ok=False, error=str(exc))
    limit = payload.timeout_seconds or timeout or DEFAULT_HTTP_TIMEOUT
    if timeout:  # the request's own timeout may shorten the job's limit, never extend it
        limit = min(limit, timeout)
    if client is None:
        async with httpx.AsyncClient(follow_redirects=False) as own:
            return await _send(own, payload, url, limit, max_body, retries, backoff, progress)
    return await _send(client, payload, url, limit, max_body, retries, backoff, progress)


def check_url(raw: str, allowed_hosts: Iterable[str] | None) -> httpx.URL:
    """Parse the URL; raise `HttpRejected` unless it is http(s) to an allowed host."""
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise HttpRejected(f"http rejected: invalid URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise HttpRejected("http rejected: only absolute http:// and https:// URLs are allowed")
    if allowed_hosts is not None:
        hosts = {host.strip().lower() for host in allowed_hosts if host.strip()}
        if url.host.lower() not in hosts:
            raise HttpRejected(f"http rejected: host '{url.host}' is not in the allowed hosts list")
    return url


async def _send(
    client: httpx.AsyncClient,
    payload: HttpPayload,
    url: httpx.URL,
    limit: float,
    max_body: int,
    retries: int,
    backoff: float,
    progress: Progress,
) -> Execution:
    may_retry = payload.method in IDEMPOTENT_METHODS
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        retry_left = may_retry and attempts <= retries
        try:
            # httpx's timeouts are per phase; this bounds a body that trickles in slowly.
            async with asyncio.timeout(limit):
                reply = await _attempt(client, payload, url, limit, max_body)
        except TimeoutError:
            return Execution(ok=False, error=f"http request failed: timed out after {limit:g} s")
        except _CONNECT_ERRORS as exc:
            if not retry_left:
                return Execution(ok=False, error=_request_error(exc, attempts, limit))
        except httpx.HTTPError as exc:
            return Execution(ok=False, error=_request_error(exc, attempts, limit))
        else:
            if reply.status < 500 or not retry_left:
                return _execution(reply, started, attempts, max_body)
        await progress(f"{payload.method} {url.host}: retrying (attempt {attempts + 1})")
        await asyncio.sleep(backoff * 2 ** (attempts - 1))


async def _attempt(
    client: httpx.AsyncClient, payload: HttpPayload, url: httpx.URL, limit: float, max_body: int
) -> _Reply:
    """One request, reading at most `max_body + 1` bytes of the body."""
    request = client.build_request(
        payload.method,
        url,
        headers=payload.headers,
        json=payload.json_body,
        timeout=httpx.Timeout(limit),
    )
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        body = bytearray()
        complete = True
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_body:
                complete = False  # stop downloading: the cap is there to bound time and memory
                break
        headers = {k: response.headers[k] for k in SELECTED_HEADERS if k in response.headers}
        return _Reply(response.status_code, headers, bytes(body), _full_size(response), complete)
    finally:
        await response.aclose()


def _full_size(response: httpx.Response) -> int | None:
    """The decoded body's size from `content-length`, which is only that for unencoded bodies."""
    if "content-encoding" in response.headers:
        return None
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _execution(reply: _Reply, started: float, attempts: int, max_body: int) -> Execution:
    text, truncated = _body_text(reply, max_body)
    result: dict[str, Any] = {
        "status": reply.status,
        "headers": reply.headers,
        "truncated": truncated,
        "durationMs": round((time.monotonic() - started) * 1000),
        "attempts": attempts,
    }
    parsed = _json_body(reply, text) if not truncated else None
    if parsed is not None:
        result["json"] = parsed[0]
    else:
        result["body"] = text
    if reply.status >= 400:
        return Execution(ok=False, result=result, error=f"HTTP {reply.status}")
    return Execution(ok=True, result=result)


def _body_text(reply: _Reply, max_body: int) -> tuple[str, bool]:
    if reply.complete:
        return cap_output(reply.body, max_body)
    if reply.size is not None and reply.size > max_body:
        return cap_output(reply.body, max_body, total=reply.size)
    text, _ = cap_output(reply.body[:max_body], max_body)
    return text + truncation_marker(None), True


def _json_body(reply: _Reply, text: str) -> tuple[Any] | None:
    """The parsed body, in a 1-tuple (so JSON `null` is told apart from not JSON)."""
    content_type = reply.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        return None
    try:
        return (json.loads(text),)
    except ValueError:
        return None


def _request_error(exc: httpx.HTTPError, attempts: int, limit: float) -> str:
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        what = f"timed out after {limit:g} s ({kind})"
    else:
        what = f"{kind}: {exc}" if str(exc) else kind
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return f"http request failed{tries}: {what}"
