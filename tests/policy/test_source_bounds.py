"""Splitting a policy into statements is linear in its size: a policy of thousands of
rules (what ``policy suggest`` writes for a large fleet) once took seconds to split, on
the event loop of every replica that loaded it. Cost is compared at n and 8n rules."""

from __future__ import annotations

import time
from collections.abc import Callable

from tether.policy.source import split_statements

LINEAR = 8 * 3
"""8x the rules may cost at most 24x the time; the quadratic split cost 64x."""


def _cost(work: Callable[[], object], repeat: int = 5) -> float:
    """Best of ``repeat`` in this process's CPU time, so a busy machine does not count."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def _policy(rules: int) -> str:
    return "\n".join(
        f'permit(principal, action == Action::"s3:GetObject", resource) '
        f'when {{ resource.arn like "arn:aws:s3:::bucket-{i}/*" }};'
        for i in range(rules)
    )


def test_each_statement_keeps_only_its_own_token_ends() -> None:
    source = _policy(3)
    statements = split_statements(source)
    assert [s.text for s in statements] == source.split("\n")
    for statement in statements:
        assert statement.boundaries[-1] == len(statement.text)
        assert all(0 < b <= len(statement.text) for b in statement.boundaries)


def test_splitting_cost_grows_linearly_in_rules() -> None:
    small, large = _policy(150), _policy(1_200)
    assert _cost(lambda: split_statements(large)) < LINEAR * _cost(lambda: split_statements(small))
