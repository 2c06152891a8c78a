"""Response headers of tether's own that the CLI reads: named once for both sides."""

from __future__ import annotations

__all__ = ["CHAIN_BASE_HEADER", "CHAIN_HEAD_HEADER", "NEXT_PAGE_HEADER"]

NEXT_PAGE_HEADER = "X-Tether-Next-Page"
"""On a list cut at its limit: the query parameter (``name=value``) of the next page."""

CHAIN_HEAD_HEADER = "X-Tether-Chain-Head"
"""On an audit export: ``SEQ:HASH`` of the chain head it stops at, so a client walking the
stream can tell a cut tail from the end of the trail."""

CHAIN_BASE_HEADER = "X-Tether-Chain-Base"
"""On an audit export: ``SEQ:HASH`` of the last event removed by a prune (``0`` and the
genesis hash if none was), which the first exported event must continue from."""
