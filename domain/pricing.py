"""What a model call costs: a price table per model, in US dollars per million tokens.

The table shipped here holds Anthropic's list prices; `BAKER_MODEL_PRICES` (a JSON file of the
same shape, read by the composition root) overrides or adds models. A model is looked up by
its exact name, then by the longest listed prefix (`claude-sonnet-4-5` prices
`claude-sonnet-4-5-20250929`); a model in neither costs nothing and is reported as unpriced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from domain.errors import FieldError


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


def _p(inp: float, out: float) -> Price:
    # Anthropic's cache writes (5-minute) cost 1.25x input, cache reads 0.1x input.
    return Price(inp, out, round(inp * 1.25, 6), round(inp * 0.1, 6))


DEFAULT_PRICES: Final[Mapping[str, Price]] = {
    "claude-opus-4-5": _p(5, 25),
    "claude-opus-4-1": _p(15, 75),
    "claude-opus-4": _p(15, 75),
    "claude-opus": _p(5, 25),
    "claude-sonnet-4-5": _p(3, 15),
    "claude-sonnet-4": _p(3, 15),
    "claude-sonnet": _p(3, 15),
    "claude-3-7-sonnet": _p(3, 15),
    "claude-haiku-4-5": _p(1, 5),
    "claude-haiku": _p(1, 5),
    "claude-3-5-haiku": _p(0.8, 4),
    "claude-3-haiku": _p(0.25, 1.25),
}


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Price]

    def price_of(self, model: str) -> Price | None:
        if model in self.prices:
            return self.prices[model]
        prefixes = [name for name in self.prices if model.startswith(name)]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, model: str, usage: Mapping[str, int]) -> float:
        """The cost of one call's usage (`inputTokens`, `outputTokens`, `cacheReadTokens`,
        `cacheWriteTokens`), rounded to a millionth of a dollar; 0 for an unpriced model."""
        price = self.price_of(model)
        if price is None:
            return 0.0
        dollars = (
            usage.get("inputTokens", 0) * price.input
            + usage.get("outputTokens", 0) * price.output
            + usage.get("cacheWriteTokens", 0) * price.cache_write
            + usage.get("cacheReadTokens", 0) * price.cache_read
        ) / 1_000_000
        return round(dollars, 6)


DEFAULT_TABLE: Final = PriceTable(DEFAULT_PRICES)


def price_table(overrides: Any) -> PriceTable:
    """The shipped table with `overrides` (the parsed `BAKER_MODEL_PRICES` document:
    `{model: {input, output, cacheWrite?, cacheRead?}}`) on top; `FieldError` names a bad entry."""
    if not isinstance(overrides, dict):
        raise FieldError("BAKER_MODEL_PRICES", "must be a JSON object of models")
    prices = dict(DEFAULT_PRICES)
    for model, entry in overrides.items():
        prices[str(model)] = _entry(str(model), entry)
    return PriceTable(prices)


def _entry(model: str, entry: Any) -> Price:
    if not isinstance(entry, dict):
        raise FieldError(f"BAKER_MODEL_PRICES.{model}", "must be an object of prices")
    values: dict[str, float] = {}
    for key in ("input", "output", "cacheWrite", "cacheRead"):
        value = entry.get(key)
        if value is None and key.startswith("cache"):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise FieldError(f"BAKER_MODEL_PRICES.{model}.{key}", "must be a number >= 0")
        values[key] = float(value)
    return Price(
        values["input"],
        values["output"],
        values.get("cacheWrite", values["input"] * 1.25),
        values.get("cacheRead", values["input"] * 0.1),
    )
