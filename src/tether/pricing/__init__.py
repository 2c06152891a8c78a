"""What model calls cost: token usage as upstream reports it, priced per model."""

from tether.pricing.prices import ModelPrice, PriceTable
from tether.pricing.usage import Usage

__all__ = ["ModelPrice", "PriceTable", "Usage"]
