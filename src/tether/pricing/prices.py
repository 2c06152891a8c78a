"""Per-million-token prices of Claude models, matched by model-id prefix.

The table is the public price list (USD per million tokens: input, output, 5-minute and
1-hour cache writes, cache reads). Operators override or extend it with a JSON file
(``TETHER_PRICES_FILE``); a model nobody priced is charged the fallback price (the most
expensive current model by default) with a warning, never $0.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.errors import ConfigError
from tether.pricing.model_ids import canonical_model_id
from tether.pricing.usage import Usage

__all__ = ["DEFAULT_PRICES", "ModelPrice", "PriceTable", "load_price_overrides"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    def cost_usd(self, usage: Usage) -> float:
        five_minute = max(0, usage.cache_creation_input_tokens - usage.cache_creation_1h_tokens)
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + five_minute * self.cache_write_5m
            + usage.cache_creation_1h_tokens * self.cache_write_1h
            + usage.cache_read_input_tokens * self.cache_read
        ) / 1_000_000


def _price(i: float, o: float, w5: float, w1: float, r: float) -> ModelPrice:
    return ModelPrice(input=i, output=o, cache_write_5m=w5, cache_write_1h=w1, cache_read=r)


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-fable-5-1": _price(10, 50, 12.5, 20, 0.25),
    "claude-mythos-5-1": _price(10, 50, 12.5, 20, 0.25),
    "claude-fable-5": _price(10, 50, 12.5, 20, 1.0),
    "claude-mythos-5": _price(10, 50, 12.5, 20, 1.0),
    "claude-opus-5-5": _price(4, 20, 5, 8, 0.20),
    "claude-opus-5": _price(5, 25, 6.25, 10, 0.50),
    "claude-opus-4-8": _price(5, 25, 6.25, 10, 0.50),
    "claude-opus-4-7": _price(5, 25, 6.25, 10, 0.50),
    "claude-opus-4-6": _price(5, 25, 6.25, 10, 0.50),
    "claude-opus-4-5": _price(5, 25, 6.25, 10, 0.50),
    "claude-opus-4-1": _price(15, 75, 18.75, 30, 1.50),
    "claude-opus-4": _price(15, 75, 18.75, 30, 1.50),
    "claude-sonnet-5-5": _price(2, 10, 2.5, 4, 0.10),
    "claude-sonnet-5": _price(2, 10, 2.5, 4, 0.20),
    "claude-sonnet-4": _price(3, 15, 3.75, 6, 0.30),
    "claude-3-7-sonnet": _price(3, 15, 3.75, 6, 0.30),
    "claude-haiku-5-5": _price(0.10, 0.50, 0.125, 0.20, 0.01),
    "claude-haiku-4-5": _price(1, 5, 1.25, 2, 0.10),
    "claude-3-5-haiku": _price(0.80, 4, 1, 1.6, 0.08),
    "claude-3-haiku": _price(0.25, 1.25, 0.30, 0.50, 0.03),
    "claude-3-opus": _price(15, 75, 18.75, 30, 1.50),
}

DEFAULT_FALLBACK = DEFAULT_PRICES["claude-fable-5-1"]
BATCH_PRICE_FACTOR = 0.5
"""Message Batches are billed at half the price of the same requests made one by one
(input, output and cache tokens alike)."""


class PriceTable:
    """Longest-prefix lookup: ``claude-opus-5-20260724`` is priced as ``claude-opus-5``, and
    so are its Bedrock and Vertex ids (``us.anthropic.claude-opus-5-…``, ``claude-opus-5@…``)."""

    def __init__(self, prices: dict[str, ModelPrice], fallback: ModelPrice = DEFAULT_FALLBACK):
        self._by_prefix = sorted(prices.items(), key=lambda item: len(item[0]), reverse=True)
        self._fallback = fallback
        self._cache: dict[str, tuple[ModelPrice, bool]] = {}

    def price_for(self, model: str) -> tuple[ModelPrice, bool]:
        """The price and whether it is known (False: the fallback, with a warning once)."""
        cached = self._cache.get(model)
        if cached is not None:
            return cached
        named = canonical_model_id(model)
        found = next(
            (
                price
                for prefix, price in self._by_prefix
                if named == prefix or named.startswith(prefix + "-")
            ),
            None,
        )
        if found is None:
            log.warning("no price for model %r: charging the fallback price", model)
            result = (self._fallback, False)
        else:
            result = (found, True)
        if len(self._cache) < 10_000:
            self._cache[model] = result
        return result


CACHE_MULTIPLIERS = {"cache_write_5m": 1.25, "cache_write_1h": 2.0, "cache_read": 0.1}


def _parse_price(name: str, raw: Any, origin: str) -> ModelPrice:
    """Input and output are required; cache prices default to the usual multiples of input."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: {name} must be an object with input and output prices")
    values: dict[str, float] = {}
    for field_name in ("input", "output", *CACHE_MULTIPLIERS):
        value = raw.get(field_name)
        if value is None and field_name in CACHE_MULTIPLIERS and "input" in values:
            value = values["input"] * CACHE_MULTIPLIERS[field_name]
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{origin}: {name}.{field_name} must be a non-negative number")
        values[field_name] = float(value)
    return ModelPrice(**values)


def load_price_overrides(path: Path | None) -> PriceTable:
    """The default table, overridden by ``path``: JSON with ``models`` and ``fallback``."""
    prices = dict(DEFAULT_PRICES)
    fallback = DEFAULT_FALLBACK
    if path is None:
        return PriceTable(prices, fallback)
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the price file {path}: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected an object with 'models' and/or 'fallback'")
    models = document.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: 'models' must map model-id prefixes to prices")
    for name, raw in models.items():
        prices[name] = _parse_price(name, raw, str(path))
    if "fallback" in document:
        fallback = _parse_price("fallback", document["fallback"], str(path))
    return PriceTable(prices, fallback)
