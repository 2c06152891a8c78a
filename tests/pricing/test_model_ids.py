"""Bedrock and Vertex model ids priced as the Anthropic ids they name."""

from __future__ import annotations

import pytest

from tether.pricing.model_ids import canonical_model_id
from tether.pricing.prices import DEFAULT_PRICES, PriceTable


@pytest.mark.parametrize(
    ("cloud_id", "anthropic_id"),
    [
        ("claude-opus-5", "claude-opus-5"),
        ("us.anthropic.claude-opus-5-5", "claude-opus-5-5"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku-20241022"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
            "claude-haiku-4-5-20251001",
        ),
        ("claude-opus-4-1@20250805", "claude-opus-4-1-20250805"),
        ("claude-haiku-4-5@default", "claude-haiku-4-5"),
    ],
)
def test_cloud_model_ids_come_back_to_the_anthropic_id(cloud_id: str, anthropic_id: str) -> None:
    assert canonical_model_id(cloud_id) == anthropic_id
    price, known = PriceTable(DEFAULT_PRICES).price_for(cloud_id)
    assert known and price == PriceTable(DEFAULT_PRICES).price_for(anthropic_id)[0]
