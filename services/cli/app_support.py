"""Helpers shared by CLI commands: running a coroutine, talking to the Brain API, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import httpx

from domain.ids import InvalidId, check_id
from services.config import Settings


class CliError(Exception):
    """A failure to report as one clear line and an exit code (`baker` prints it)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine; Ctrl-C ends it quietly with 130."""
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return 130


def checked_id(value: str, what: str) -> str:
    """An id given on the command line, or exit 2 saying why it cannot be one."""
    try:
        return check_id(value, what)
    except InvalidId as exc:
        raise CliError(str(exc), 2) from None


def api_client(settings: Settings, timeout: float | None = 30.0) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    try:
        return httpx.AsyncClient(base_url=settings.api_url, headers=headers, timeout=timeout)
    except httpx.InvalidURL as exc:
        raise CliError(f"BAKER_API_URL: {settings.api_url!r} is not a URL ({exc})", 2) from None


def unreachable(settings: Settings, exc: Exception) -> CliError:
    return CliError(
        f"the Brain API at {settings.api_url} is unreachable: {exc or type(exc).__name__}"
        " (is `baker up` running, and BAKER_API_URL right?)",
        2,
    )


async def api_json(
    client: httpx.AsyncClient, settings: Settings, method: str, path: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """(status, JSON object) of one API call; an unreachable API or an answer that is not a
    JSON object is a `CliError` naming the URL."""
    try:
        answer = await client.request(method, path, **kwargs)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise unreachable(settings, exc) from None
    return answer.status_code, answer_document(answer, settings)


def answer_document(answer: httpx.Response, settings: Settings) -> dict[str, Any]:
    try:
        doc = answer.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise CliError(
            f"the Brain API at {settings.api_url} answered {answer.status_code} with something"
            " that is not a JSON object (is BAKER_API_URL right?)",
            2,
        )
    return doc


def refused(status: int, doc: dict[str, Any]) -> CliError:
    """An error answer of the API: exit 2 for bad input (400), else 1."""
    return CliError(f"{status}: {doc.get('error', 'no reason given')}", 2 if status == 400 else 1)
