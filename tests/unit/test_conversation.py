"""An agent job's conversation rebuilt from recorded steps; budgets and prices (DESIGN §10)."""

from __future__ import annotations

import pytest

from domain.budget import check_budget
from domain.conversation import rebuild
from domain.errors import FieldError
from domain.events import AgentModelCalled, AgentToolCalled, AgentToolReturned, Usage
from domain.pricing import DEFAULT_TABLE, price_table
from domain.specs import Budget
from domain.wire import WireError
from domain.wire_steps import MAX_TOOL_OUTPUT, cap_output, decode_step, encode_step

USE = {"type": "tool_use", "id": "toolu_1", "name": "command", "input": {"command": "ls"}}


def model(step: int, *, uses: bool, tokens: tuple[int, int] = (100, 20)) -> AgentModelCalled:
    content = [{"type": "text", "text": "hm"}, USE] if uses else [{"type": "text", "text": "done"}]
    return AgentModelCalled(
        attempt=1, step=step, model="claude-sonnet-4-5", content=content,
        stop_reason="tool_use" if uses else "end_turn", cost_usd=0.5,
        usage=Usage(input_tokens=tokens[0], output_tokens=tokens[1]),
    )  # fmt: skip


CALLED = AgentToolCalled(attempt=1, step=2, tool_use_id="toolu_1", tool="command", input={})
RETURNED = AgentToolReturned(attempt=1, step=3, tool_use_id="toolu_1", output='{"ok": true}')


def test_nothing_recorded_is_a_fresh_conversation() -> None:
    conv = rebuild("hello", [])
    assert conv.messages == [{"role": "user", "content": "hello"}]
    assert (conv.last_step, conv.model_calls, conv.awaiting_tools) == (0, 0, False)


def test_a_recorded_reply_asking_for_a_tool_leaves_that_tool_to_run() -> None:
    conv = rebuild("hello", [model(1, uses=True)])
    assert conv.awaiting_tools and [u.tool_use_id for u in conv.unanswered()] == ["toolu_1"]
    assert not conv.unanswered()[0].called and conv.messages[-1]["role"] == "assistant"


def test_a_tool_called_but_not_returned_runs_again_without_a_second_call_step() -> None:
    conv = rebuild("hello", [model(1, uses=True), CALLED])
    (use,) = conv.unanswered()
    assert use.called and use.output is None and conv.last_step == 2


def test_a_returned_tool_goes_back_to_the_model_as_one_user_turn() -> None:
    conv = rebuild("hello", [model(1, uses=True), CALLED, RETURNED])
    assert not conv.awaiting_tools and conv.last_step == 3
    assert conv.messages[-1] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"ok": true}',
         "is_error": False},
    ]}  # fmt: skip
    assert conv.tool_calls == [{"name": "command", "input": {}, "ok": True}]


def test_usage_and_cost_add_up_over_the_recorded_calls() -> None:
    conv = rebuild("hello", [model(1, uses=True), CALLED, RETURNED, model(4, uses=False)])
    assert (conv.input_tokens, conv.output_tokens, conv.cost_usd) == (200, 40, 1.0)
    assert conv.messages[-1]["role"] == "assistant" and conv.model_calls == 2


def test_a_fork_takes_the_steps_up_to_the_one_it_names() -> None:
    conv = rebuild("hello", [model(1, uses=True), CALLED, RETURNED, model(4, uses=False)], up_to=3)
    assert conv.model_calls == 1 and conv.last_step == 3


def test_a_budget_stops_before_the_call_whose_floor_would_pass_it() -> None:
    conv = rebuild("hello", [model(1, uses=True, tokens=(100, 20))])
    assert (
        check_budget(Budget(max_total_tokens=1000), conv, "claude-sonnet-4-5", DEFAULT_TABLE)
        is None
    )
    exceeded = check_budget(Budget(max_total_tokens=200), conv, "claude-sonnet-4-5", DEFAULT_TABLE)
    assert exceeded is not None and exceeded.limit == "maxTotalTokens"
    assert (exceeded.used, exceeded.projected) == (120, 240)  # 120 used + a call of >= 120
    assert check_budget(None, conv, "m", DEFAULT_TABLE) is None


def test_a_cost_budget_counts_what_was_paid_and_the_next_call_s_floor() -> None:
    conv = rebuild("hello", [model(1, uses=True)])  # cost 0.5 recorded
    exceeded = check_budget(Budget(max_cost_usd=0.5), conv, "claude-sonnet-4-5", DEFAULT_TABLE)
    assert exceeded is not None and exceeded.used == 0.5 and exceeded.projected > 0.5
    assert check_budget(Budget(max_cost_usd=1), conv, "claude-sonnet-4-5", DEFAULT_TABLE) is None


def test_prices_by_exact_name_then_longest_prefix_and_unpriced_models_cost_nothing() -> None:
    usage = {"inputTokens": 1_000_000, "outputTokens": 1_000_000}
    assert DEFAULT_TABLE.cost("claude-sonnet-4-5-20250929", usage) == 18.0
    assert DEFAULT_TABLE.cost("claude-opus-4-1-20250805", usage) == 90.0
    assert DEFAULT_TABLE.cost("gpt-9", usage) == 0.0
    cached = {"cacheReadTokens": 1_000_000, "cacheWriteTokens": 1_000_000}
    assert DEFAULT_TABLE.cost("claude-haiku-4-5", cached) == pytest.approx(0.1 + 1.25)


def test_overridden_prices_win_and_a_bad_entry_is_named() -> None:
    table = price_table({"claude-sonnet-4-5": {"input": 1, "output": 2}, "local": {"input": 0,
                         "output": 0}})  # fmt: skip
    assert table.cost("claude-sonnet-4-5", {"inputTokens": 10**6, "outputTokens": 10**6}) == 3
    with pytest.raises(FieldError, match=r"BAKER_MODEL_PRICES.x.output: must be a number"):
        price_table({"x": {"input": 1, "output": "free"}})
    with pytest.raises(FieldError, match="must be a JSON object"):
        price_table([1])


def test_step_messages_round_trip_and_a_missing_field_is_named() -> None:
    raw = encode_step("job-1", 2, 3, "toolCall", tool_use_id="toolu_1", tool="command",
                      input={"command": "ls"})  # fmt: skip
    msg = decode_step(raw)
    assert (msg.id, msg.attempt, msg.step, msg.kind, msg.tool) == (
        "job-1",
        2,
        3,
        "toolCall",
        "command",
    )
    with pytest.raises(WireError, match="toolUseId: required for a toolResult step"):
        decode_step(b'{"id": "job-1", "attempt": 1, "step": 1, "kind": "toolResult", "output": ""}')
    with pytest.raises(WireError, match="kind"):
        decode_step(b'{"id": "job-1", "attempt": 1, "step": 1, "kind": "dance"}')


def test_tool_output_is_capped_with_a_note() -> None:
    capped = cap_output("x" * (MAX_TOOL_OUTPUT * 2))
    assert len(capped) <= MAX_TOOL_OUTPUT and capped.endswith("more characters]")
    assert cap_output("short") == "short"
