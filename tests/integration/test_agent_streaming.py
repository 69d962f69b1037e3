"""Streaming model calls: the fake Messages API streams as the real one does (checked with
the real `anthropic` SDK), and the agent executor hands each text delta to the job's live
output as it arrives, while the stored result stays the whole text."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from anthropic import AsyncAnthropic

from adapters.executors.agent import run_agent
from domain.specs import AgentPayload
from domain.wire_output import OutputStream
from tests.fakes.anthropic_server import FakeAnthropic, Reply, message, text_message, tool_use
from tests.polling import until

REQUEST: dict[str, Any] = {
    "model": "claude-test-1", "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}  # fmt: skip


async def both_ways(reply: Reply) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The same scripted reply without and with streaming, as the SDK reads them, and the
    event types of the stream."""
    with FakeAnthropic([reply, reply]) as api:
        client = AsyncAnthropic(api_key="k", base_url=api.base_url, max_retries=0)
        try:
            plain = await client.messages.create(**REQUEST)
            async with client.messages.stream(**REQUEST) as stream:
                kinds = [event.type async for event in stream]
                streamed = await stream.get_final_message()
        finally:
            await client.close()
    assert api.requests[1]["stream"] is True and "stream" not in api.requests[0]
    keep = {"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"}
    return (plain.model_dump(include=keep, exclude_none=True),
            streamed.model_dump(include=keep, exclude_none=True), kinds)  # fmt: skip


async def test_a_streamed_text_reply_equals_the_plain_one() -> None:
    plain, streamed, kinds = await both_ways(text_message("The answer is 42.", usage=(12, 7)))
    assert streamed == plain
    assert plain["usage"]["output_tokens"] == 7 and plain["content"][0]["text"].endswith("42.")
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_stop", "message_delta"} <= set(kinds)
    assert kinds.count("text") == 4  # one text event per word


async def test_a_streamed_tool_use_reply_equals_the_plain_one() -> None:
    reply = tool_use("command", {"command": "echo a fairly long line"}, text="Let me look.")
    plain, streamed, kinds = await both_ways(reply)
    assert streamed == plain
    assert plain["content"][1]["input"] == {"command": "echo a fairly long line"}
    assert kinds.count("input_json") > 1  # the tool's input arrives in pieces


async def test_other_blocks_and_usage_survive_streaming() -> None:
    reply = message([{"type": "text", "text": ""}], "max_tokens", (3, 0))
    plain, streamed, _ = await both_ways(reply)
    assert streamed == plain and plain["stop_reason"] == "max_tokens"


class Live:
    """An executor's `Output` that keeps what it was given, in order."""

    def __init__(self) -> None:
        self.chunks: list[tuple[OutputStream, str]] = []

    def __call__(self, stream: OutputStream, text: str) -> None:
        self.chunks.append((stream, text))

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.chunks)


async def test_the_agent_streams_text_deltas_before_the_reply_is_complete() -> None:
    gate = threading.Event()
    script = [
        tool_use("command", {"command": "echo hi"}, text="Checking first."),
        text_message("The command said hi, all good.", hold=gate),
    ]
    live = Live()
    with FakeAnthropic(script) as api:
        payload = AgentPayload.model_validate({"prompt": "go"})
        job = asyncio.ensure_future(run_agent(
            payload, api_key="k", base_url=api.base_url, allowed_commands=("echo",),
            default_model="claude-test-1", output=live,
        ))  # fmt: skip
        try:
            # The second reply is held after its first word: that word is already out.
            await until(lambda: live.text == "Checking first.The ", "the first delta", timeout=10)
            assert not job.done()
        finally:
            gate.set()
        execution = await asyncio.wait_for(job, 10)
    assert execution.ok and execution.result["text"] == "The command said hi, all good."
    assert live.text == "Checking first.The command said hi, all good."
    assert {stream for stream, _ in live.chunks} == {"text"} and len(live.chunks) > 2
