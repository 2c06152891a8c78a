"""What a cut answer costs: one rule for every call whose usage upstream never reported in
full (the client left, upstream broke off, tether or a budget stopped the stream, a 200
that is not a message).

What upstream reported is charged as reported — a stream's ``message_start`` gives its
input exactly. Each part it did not report is charged at its worst case:

- the input, when unreported: the request's size estimate at the highest price an input
  token can be billed at (a 1-hour cache write);
- the output: for a stream, what was seen so far plus ``UNSEEN_STREAM_TOKENS`` (what
  upstream may have generated past the last byte tether read before the connection
  closed), never more than ``max_tokens``; for a whole answer, its ``max_tokens`` (as
  capped by the budget, if it was).

A budget then charges this cost as any other, never past its limit.
"""

from __future__ import annotations

from tether.pricing.prices import ModelPrice
from tether.pricing.usage import Usage

__all__ = ["UNSEEN_STREAM_TOKENS", "cut_answer_cost"]

UNSEEN_STREAM_TOKENS = 2048
"""The output a cut stream is charged beyond what was seen: one budget output increment,
what tether lets upstream run ahead of what it covered."""


def cut_answer_cost(
    price: ModelPrice,
    seen: Usage,
    *,
    input_estimate: int,
    max_output_tokens: int,
    stream: bool,
) -> float:
    """USD for a cut answer, by the rule above."""
    known = Usage(
        input_tokens=seen.input_tokens,
        cache_creation_input_tokens=seen.cache_creation_input_tokens,
        cache_read_input_tokens=seen.cache_read_input_tokens,
        cache_creation_1h_tokens=seen.cache_creation_1h_tokens,
    )
    cost = price.cost_usd(known)
    if known.total_tokens == 0:
        highest = max(price.input, price.cache_write_5m, price.cache_write_1h)
        cost += input_estimate * highest / 1_000_000
    if stream:
        output = min(max_output_tokens, seen.output_tokens + UNSEEN_STREAM_TOKENS)
    else:
        output = max_output_tokens
    return cost + max(output, seen.output_tokens) * price.output / 1_000_000
