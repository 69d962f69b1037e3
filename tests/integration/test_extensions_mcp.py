"""The MCP client against the fake MCP server: handshake, paging, SSE answers, retries."""

from __future__ import annotations

import time

import httpx
import pytest

from adapters.mcp import McpError, list_tools
from tests.fakes.mcp_server import FakeMcp, tool


async def test_tools_are_listed_after_the_initialize_handshake() -> None:
    with FakeMcp([tool("forecast", "weather"), tool("ping")]) as mcp:
        tools = await list_tools(mcp.url, delay=0)
    assert [t["name"] for t in tools] == ["forecast", "ping"]
    assert tools[0] == {
        "name": "forecast",
        "description": "weather",
        "inputSchema": {"type": "object", "properties": {}},
    }
    assert mcp.methods() == ["initialize", "notifications/initialized", "tools/list"]


async def test_pages_are_followed_and_event_stream_answers_are_read() -> None:
    with FakeMcp([tool(f"t{i}") for i in range(5)], page_size=2, sse=True) as mcp:
        tools = await list_tools(mcp.url, delay=0)
    assert [t["name"] for t in tools] == ["t0", "t1", "t2", "t3", "t4"]
    assert mcp.methods().count("tools/list") == 3


async def test_failures_are_retried_then_it_succeeds() -> None:
    with FakeMcp([tool("ping")], fail_first=2) as mcp:
        async with httpx.AsyncClient() as client:
            tools = await list_tools(mcp.url, client=client, retries=3, delay=0.01)
    assert tools == [tool("ping")]
    assert mcp.methods()[:3] == ["initialize", "initialize", "initialize"]


async def test_it_gives_up_after_the_retries_with_a_clear_error() -> None:
    with FakeMcp([tool("ping")], fail_first=100) as mcp:
        started = time.monotonic()
        with pytest.raises(McpError, match=r"failed after 3 attempts: .*HTTP 500"):
            await list_tools(mcp.url, retries=2, delay=0.05)
    assert mcp.methods() == ["initialize"] * 3
    assert time.monotonic() - started >= 0.1  # two delays between three attempts


async def test_dead_endpoints_wrong_paths_and_bad_answers_raise_mcp_error() -> None:
    with FakeMcp() as mcp:
        dead = mcp.url
    with pytest.raises(McpError, match="failed after 1 attempts"):
        await list_tools(dead, retries=0, delay=0, timeout=1)
    with FakeMcp([tool("ping")]) as mcp:
        with pytest.raises(McpError, match="HTTP 404"):
            await list_tools(mcp.url.replace("/mcp", "/nope"), retries=0, delay=0)
        mcp.set_tools([{"description": "a tool without a name"}])
        with pytest.raises(McpError, match="needs a name"):
            await list_tools(mcp.url, retries=0, delay=0)
