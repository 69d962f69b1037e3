"""The agent's tools, `command` and `http`: what the model may call, run through the same
executors, allowlists and limits as `command` and `http` jobs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from anthropic.types import ToolParam
from pydantic import ValidationError

from adapters.executors.base import Execution
from adapters.executors.command import run_command
from adapters.executors.http import run_http
from domain.command_sandbox import DEFAULT_SANDBOX, CommandSandbox
from domain.specs import REDACTED, CommandPayload, HttpPayload, redact_command
from domain.wire_steps import cap_output

TOOLS: list[ToolParam] = [
    {
        "name": "command",
        "description": "Run one allowed command (no shell: pipes and `;` are plain arguments).",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "e.g. `df -h`"}},
            "required": ["command"],
        },
    },
    {
        "name": "http",
        "description": "Send one HTTP request and get its status, selected headers and body.",
        "input_schema": {
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "method": {"type": "string", "description": "GET (default), POST, PUT, ..."},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "json": {"description": "a JSON request body"},
            },
            "required": ["url"],
        },
    },
]


@dataclass
class Tools:
    """What the tools may do: the allowlists and limits of `command` and `http` jobs."""

    allowed_commands: tuple[str, ...]
    http_allowed_hosts: tuple[str, ...] | None
    sandbox: CommandSandbox = DEFAULT_SANDBOX  # how its commands are confined


async def run_tool(name: str, args: dict[str, object], tools: Tools) -> Execution:
    try:
        if name == "command":
            command = CommandPayload.model_validate({"command": args.get("command")})
            return await run_command(
                command, allowed=tools.allowed_commands, timeout=None, sandbox=tools.sandbox
            )
        if name == "http":
            request = HttpPayload.model_validate(args)
            return await run_http(request, allowed_hosts=tools.http_allowed_hosts)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return Execution(ok=False, error=f"invalid {name} tool input: {problems}")
    return Execution(ok=False, error=f"unknown tool '{name}'")


def recorded_input(args: dict[str, object]) -> dict[str, object]:
    """The tool input as kept in the job result: secrets in env assignments and headers masked."""
    recorded = dict(args)
    if isinstance(recorded.get("command"), str):
        recorded["command"] = redact_command(str(recorded["command"]))
    headers = recorded.get("headers")
    if isinstance(headers, dict):
        recorded["headers"] = {key: REDACTED for key in headers}
    return recorded


async def use_tool(name: str, args: dict[str, Any], tools: Tools) -> tuple[str, bool, int]:
    """Run one tool call: (its output as the model is given it, capped; whether it failed;
    how long it took in ms)."""
    started = time.perf_counter()
    execution = await run_tool(name, args, tools)
    took = int((time.perf_counter() - started) * 1000)
    content = {"ok": execution.ok, "error": execution.error, "result": execution.result}
    text = json.dumps({k: v for k, v in content.items() if v is not None})
    return cap_output(text), not execution.ok, took
