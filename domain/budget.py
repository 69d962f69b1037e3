"""An agent job's budget (DESIGN §10): stop before the model call that would pass it.

The next call's tokens are not known before it is made, but never fewer than the last
call's input and output (the next request carries the whole conversation so far, that reply
included): the job stops when what it used plus that lower bound would pass a limit, so a
stopped job has not paid for a call it could not afford.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.conversation import Conversation
from domain.pricing import PriceTable


@dataclass(frozen=True, slots=True)
class BudgetExceeded:
    limit: str  # "maxTotalTokens" | "maxCostUsd"
    allowed: float
    used: float
    projected: float

    def document(self) -> dict[str, Any]:
        return {"limit": self.limit, "allowed": self.allowed, "used": self.used,
                "projected": self.projected}  # fmt: skip

    def message(self) -> str:
        return (
            f"budget exceeded: the next model call would pass {self.limit} {self.allowed:g} "
            f"(used {self.used:g}, at least {self.projected:g} with the next call)"
        )


def next_call_floor(conversation: Conversation) -> dict[str, int]:
    """The least usage the next model call can have."""
    reply = conversation.last_reply
    if reply is None:
        return {}
    usage = reply.usage
    carried = (
        usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        + usage.output_tokens
    )  # fmt: skip
    return {"inputTokens": carried}


def check_budget(
    budget: Any, conversation: Conversation, model: str, prices: PriceTable
) -> BudgetExceeded | None:
    """`budget` (with `max_total_tokens`, `max_cost_usd`, either None) against the usage so
    far plus the next call's floor."""
    if budget is None:
        return None
    floor = next_call_floor(conversation)
    max_tokens = getattr(budget, "max_total_tokens", None)
    if max_tokens is not None:
        used = conversation.total_tokens
        projected = used + sum(floor.values())
        if projected > max_tokens:
            return BudgetExceeded("maxTotalTokens", max_tokens, used, projected)
    max_cost = getattr(budget, "max_cost_usd", None)
    if max_cost is not None:
        used_cost = conversation.cost_usd
        projected_cost = round(used_cost + prices.cost(model, floor), 6)
        if projected_cost > max_cost:
            return BudgetExceeded("maxCostUsd", max_cost, used_cost, projected_cost)
    return None
