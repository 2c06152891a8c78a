"""The command parser is linear in its input and bounded: a long pipeline costs in
proportion to its length, and past the limits one ``too_complex`` action comes back
instead of thousands. Cost is compared at n and 8n (a generous ratio, so a loaded
machine does not fail it)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tether.commands.parse import MAX_COMMAND_BYTES, MAX_SUBCOMMANDS, actions_of
from tether.redaction.text import redacted_summary

LINEAR = 8 * 3
"""8x the input may cost at most 24x the time: linear with room for noise; the quadratic
behaviour this guards against costs 64x."""


def _cost(work: Callable[[], object], repeat: int = 5) -> float:
    """The best of ``repeat`` runs in this process's CPU time: other processes on a busy
    machine do not count, so the ratio measures the work, not the scheduler."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def _pipes(n: int) -> str:
    return "echo a" + " | cat" * n


def test_a_pipeline_within_the_limits_is_one_action_per_distinct_effect() -> None:
    actions = actions_of(_pipes(MAX_SUBCOMMANDS - 1), "/home/dev")
    assert [(a.action, a.resource) for a in actions] == [("file:Read", "/home/dev")]


def test_parsing_cost_grows_linearly_up_to_the_limit() -> None:
    small, large = _pipes(10), _pipes(80)
    assert _cost(lambda: actions_of(large)) < LINEAR * _cost(lambda: actions_of(small))


def test_parsing_cost_grows_linearly_in_bytes() -> None:
    small = "grep " + "x" * 1_000 + " file"
    large = "grep " + "x" * 8_000 + " file"
    assert _cost(lambda: actions_of(large)) < LINEAR * _cost(lambda: actions_of(small))


def test_too_many_commands_are_refused_with_a_reason() -> None:
    (action,) = actions_of(_pipes(MAX_SUBCOMMANDS + 1))
    assert action.too_complex and not action.understood
    assert f"at most {MAX_SUBCOMMANDS}" in action.detail


def test_a_command_past_the_byte_limit_is_refused_unread() -> None:
    line = "echo " + "a" * MAX_COMMAND_BYTES
    (action,) = actions_of(line)
    assert action.too_complex
    assert f"{MAX_COMMAND_BYTES:,} bytes" in action.detail
    assert len(action.resource) < 1_100
    huge = "echo " + "a" * (MAX_COMMAND_BYTES * 60)
    assert _cost(lambda: actions_of(huge)) < LINEAR * _cost(lambda: actions_of(line))


def test_many_sql_statements_are_bounded() -> None:
    sql = "; ".join(f"delete from t{i}" for i in range(150))
    (action,) = actions_of(f'psql -c "{sql}"')
    assert action.too_complex and "distinct effects" in action.detail


def test_a_summary_of_a_huge_input_costs_what_a_short_one_does() -> None:
    short = {"content": "x" * 2_000, "file_path": "/a"}
    huge = {"content": "x" * 2_000_000, "file_path": "/a"}
    assert len(redacted_summary(huge)) <= 200
    assert _cost(lambda: redacted_summary(huge)) < LINEAR * _cost(lambda: redacted_summary(short))


def test_a_summary_still_blanks_a_secret_that_runs_past_the_cut() -> None:
    summary = redacted_summary({"command": "export API_TOKEN=" + "s" * 5_000})
    assert "sss" not in summary


def test_aws_arguments_cost_grows_linearly() -> None:
    def line(n: int) -> str:
        return "aws " + "--no-paginate " * n + "s3api put-object --bucket b --key k"

    assert _cost(lambda: actions_of(line(8 * 300))) < LINEAR * _cost(lambda: actions_of(line(300)))
    assert actions_of(line(300))[0].action == "s3:PutObject"
