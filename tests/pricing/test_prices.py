"""The price table: longest-prefix matching, cache-write TTLs, fallback, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether.errors import ConfigError
from tether.pricing.prices import DEFAULT_PRICES, load_price_overrides
from tether.pricing.usage import Usage

TABLE = load_price_overrides(None)


@pytest.mark.parametrize(
    ("model", "prefix"),
    [
        ("claude-opus-5", "claude-opus-5"),
        ("claude-opus-5-20260724", "claude-opus-5"),
        ("claude-opus-5-5", "claude-opus-5-5"),
        ("claude-opus-5-5-20261001", "claude-opus-5-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ],
)
def test_longest_prefix_wins(model: str, prefix: str) -> None:
    price, known = TABLE.price_for(model)
    assert known and price == DEFAULT_PRICES[prefix]


def test_a_prefix_does_not_match_inside_a_word() -> None:
    _, known = TABLE.price_for("claude-opus-50")
    assert not known


def test_cost_counts_every_token_kind_and_the_one_hour_cache() -> None:
    price, _ = TABLE.price_for("claude-sonnet-5")
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=100_000,
        cache_creation_input_tokens=400_000,
        cache_read_input_tokens=2_000_000,
        cache_creation_1h_tokens=100_000,
    )
    expected = 2 + 0.1 * 10 + 0.3 * 2.5 + 0.1 * 4 + 2 * 0.20
    assert price.cost_usd(usage) == pytest.approx(expected)


def test_later_usage_reports_win_and_bad_values_are_ignored() -> None:
    usage = Usage()
    usage.update({"input_tokens": 10, "output_tokens": 1})
    usage.update(
        {
            "output_tokens": 42,
            "input_tokens": None,
            "cache_read_input_tokens": -3,
            "cache_creation": {"ephemeral_1h_input_tokens": 7},
        }
    )
    assert (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_1h_tokens,
    ) == (10, 42, 0, 7)


def test_overrides_default_cache_prices_from_input(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"acme-model": {"input": 8, "output": 40}}}))
    price, known = load_price_overrides(path).price_for("acme-model-v2")
    assert known
    assert (price.cache_write_5m, price.cache_write_1h, price.cache_read) == (10, 16, 0.8)


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        json.dumps([1]),
        json.dumps({"models": {"m": {"input": -1, "output": 1}}}),
        json.dumps({"models": {"m": {"output": 1}}}),
        json.dumps({"models": []}),
    ],
)
def test_broken_override_files_name_the_problem(tmp_path: Path, document: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(document)
    with pytest.raises(ConfigError, match=r"prices\.json"):
        load_price_overrides(path)
