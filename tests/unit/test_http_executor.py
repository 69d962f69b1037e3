"""The `http` executor against `httpx.MockTransport`: requests, results, limits, retries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from adapters.executors.base import Execution
from adapters.executors.http import check_url, run_http
from domain.specs import HttpPayload

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a list and keeps every request it saw."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def payload(**fields: Any) -> HttpPayload:
    return HttpPayload.model_validate({"url": "https://api.example.com/v1/items", **fields})


async def run(handler: Any, doc: HttpPayload, **options: Any) -> Execution:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await run_http(doc, client=client, backoff=0, **options)


async def test_a_get_returns_status_selected_headers_and_body() -> None:
    answer = httpx.Response(
        200,
        text="hello",
        headers={
            "content-type": "text/plain",
            "etag": '"v1"',
            "set-cookie": "s=secret",
            "x-a": "1",
        },
    )
    recorder = Recorder(answer)
    execution = await run(recorder, payload())
    assert execution.ok
    assert execution.error is None
    result = execution.result
    assert result["status"] == 200
    assert result["body"] == "hello"
    assert result["headers"] == {
        "content-type": "text/plain",
        "etag": '"v1"',
        "content-length": "5",
    }
    assert result["truncated"] is False
    assert result["attempts"] == 1
    assert isinstance(result["durationMs"], int)
    assert recorder.requests[0].method == "GET"
    assert str(recorder.requests[0].url) == "https://api.example.com/v1/items"


async def test_method_headers_and_json_body_are_sent() -> None:
    recorder = Recorder(httpx.Response(201, json={"id": 7}))
    doc = payload(
        method="post", headers={"X-Trace": "abc", "Authorization": "Bearer t"}, json={"a": [1, 2]}
    )
    execution = await run(recorder, doc)
    sent = recorder.requests[0]
    assert sent.method == "POST"
    assert sent.headers["x-trace"] == "abc"
    assert sent.headers["authorization"] == "Bearer t"
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {"a": [1, 2]}
    assert execution.ok
    assert execution.result["status"] == 201


async def test_no_json_means_no_body() -> None:
    recorder = Recorder(httpx.Response(204))
    execution = await run(recorder, payload(method="DELETE"))
    assert recorder.requests[0].content == b""
    assert execution.ok
    assert execution.result["body"] == ""


async def test_a_json_response_is_parsed() -> None:
    execution = await run(Recorder(httpx.Response(200, json={"ok": True, "n": [1]})), payload())
    assert execution.result["json"] == {"ok": True, "n": [1]}
    assert "body" not in execution.result
    problem = httpx.Response(
        200, content=b'{"x": null}', headers={"content-type": "application/problem+json"}
    )
    assert (await run(Recorder(problem), payload())).result["json"] == {"x": None}


async def test_json_that_does_not_parse_stays_text() -> None:
    answer = httpx.Response(200, content=b"{oops", headers={"content-type": "application/json"})
    execution = await run(Recorder(answer), payload())
    assert execution.result["body"] == "{oops"
    assert "json" not in execution.result


async def test_a_large_body_is_capped_and_marked() -> None:
    answer = httpx.Response(200, content=b"a" * 5000, headers={"content-type": "application/json"})
    execution = await run(Recorder(answer), payload(), max_body=1000)
    result = execution.result
    assert result["truncated"] is True
    assert result["body"] == "a" * 1000 + "\n…[truncated: 4000 bytes omitted]"
    assert "json" not in result  # a cut JSON document is not parsed


async def test_a_streamed_body_of_unknown_size_is_capped_and_marked() -> None:
    async def chunks() -> Any:
        for _ in range(100):
            yield b"b" * 100

    execution = await run(Recorder(httpx.Response(200, content=chunks())), payload(), max_body=250)
    assert execution.result["truncated"] is True
    assert execution.result["body"] == "b" * 250 + "\n…[truncated: remaining bytes omitted]"


async def test_status_400_and_above_is_a_failure_with_the_body() -> None:
    execution = await run(Recorder(httpx.Response(404, text="nope")), payload())
    assert not execution.ok
    assert execution.error == "HTTP 404"
    assert execution.result["status"] == 404
    assert execution.result["body"] == "nope"


async def test_redirects_are_not_followed() -> None:
    recorder = Recorder(httpx.Response(302, headers={"location": "https://elsewhere.test/"}))
    execution = await run(recorder, payload())
    assert execution.ok
    assert execution.result["status"] == 302
    assert execution.result["headers"]["location"] == "https://elsewhere.test/"
    assert len(recorder.requests) == 1


async def test_a_host_outside_the_allowlist_is_rejected_before_sending() -> None:
    recorder = Recorder(httpx.Response(200))
    execution = await run(
        recorder, payload(url="https://evil.test/x"), allowed_hosts=["API.example.com"]
    )
    assert execution == Execution(
        ok=False, error="http rejected: host 'evil.test' is not in the allowed hosts list"
    )
    assert recorder.requests == []
    allowed = await run(recorder, payload(), allowed_hosts=[" API.example.com "])
    assert allowed.ok


def test_only_http_and_https_urls_pass_the_check() -> None:
    assert check_url("http://a.test/", None).host == "a.test"
    with pytest.raises(ValueError, match="only absolute http"):
        check_url("ftp://a.test/", None)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
async def test_idempotent_methods_retry_on_5xx_up_to_the_bound(method: str) -> None:
    recorder = Recorder(httpx.Response(503))
    execution = await run(recorder, payload(method=method), retries=2)
    assert len(recorder.requests) == 3
    assert not execution.ok
    assert execution.result["status"] == 503
    assert execution.result["attempts"] == 3


async def test_a_retry_that_succeeds_reports_its_attempts_and_progress() -> None:
    seen: list[str] = []

    async def progress(text: str) -> None:
        seen.append(text)

    recorder = Recorder(httpx.Response(502), httpx.Response(200, text="ok"))
    execution = await run(recorder, payload(), retries=2, progress=progress)
    assert execution.ok
    assert execution.result["attempts"] == 2
    assert seen == ["GET api.example.com: retrying (attempt 2)"]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_methods_never_retry(method: str) -> None:
    recorder = Recorder(httpx.Response(500))
    execution = await run(recorder, payload(method=method, json={}), retries=5)
    assert len(recorder.requests) == 1
    assert execution.result["attempts"] == 1
    assert execution.error == "HTTP 500"


async def test_connect_errors_are_retried_for_get_then_reported() -> None:
    recorder = Recorder(httpx.ConnectError("connection refused"))
    execution = await run(recorder, payload(), retries=2)
    assert len(recorder.requests) == 3
    assert execution == Execution(
        ok=False, error="http request failed after 3 attempts: ConnectError: connection refused"
    )


async def test_a_connect_error_then_success_is_ok() -> None:
    recorder = Recorder(httpx.ConnectTimeout("slow"), httpx.Response(200, text="up"))
    execution = await run(recorder, payload(), retries=1)
    assert execution.ok
    assert execution.result["attempts"] == 2


async def test_connect_errors_are_not_retried_for_post() -> None:
    recorder = Recorder(httpx.ConnectError("connection refused"))
    execution = await run(recorder, payload(method="POST"), retries=3)
    assert len(recorder.requests) == 1
    assert execution.error == "http request failed: ConnectError: connection refused"


async def test_a_read_timeout_is_not_retried_even_for_get() -> None:
    recorder = Recorder(httpx.ReadTimeout("read"))
    execution = await run(recorder, payload(timeout_seconds=5), retries=3)
    assert len(recorder.requests) == 1
    assert execution.error == "http request failed: timed out after 5 s (ReadTimeout)"


async def test_the_payload_timeout_wins_then_the_given_one_then_thirty_seconds() -> None:
    recorder = Recorder(httpx.Response(200))
    await run(recorder, payload(timeout_seconds=7))
    await run(recorder, payload(), timeout=12)
    await run(recorder, payload())
    await run(recorder, payload(timeout_seconds=45), timeout=12)  # never beyond the job's
    await run(recorder, payload(timeout_seconds=45))
    limits = [request.extensions["timeout"]["read"] for request in recorder.requests]
    assert limits == [7, 12, 30, 12, 45]


async def test_a_server_that_never_answers_times_out() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    execution = await run(hang, payload(timeout_seconds=0.05))
    assert execution == Execution(ok=False, error="http request failed: timed out after 0.05 s")


async def test_cancellation_propagates() -> None:
    entered = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(run(hang, payload()))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
