"""Every audit event's columns are cleaned by one rule whatever path they take
(``tether.audit.normalise``): values remembered from earlier events give what cleaning
them afresh gives, and long or odd values are never remembered."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.audit.chain import BASE_COLUMNS
from tether.audit.event import AuditEvent
from tether.audit.normalise import (
    _LIMITS,
    MAX_REMEMBERED_CHARS,
    _remembered_columns,
    clean_text,
    normalised_row,
)

TEXTS = st.one_of(
    st.sampled_from(
        ["agent:a", "anthropic", "model:messages", "allow", "sk-ant-api03-abcdefghijklmnop",
         "curl -u ann:hunter2 https://x", "a\x00b", "\udcff", "x" * 300, "y" * 2_000]
    ),
    st.text(max_size=400),
)  # fmt: skip


def _expected(event: AuditEvent) -> tuple[Any, ...]:
    """The rule as written: each column through ``clean_text`` with its column's bound."""
    values = [getattr(event, name) for name in BASE_COLUMNS[:-1]]
    return tuple(
        value if name == "ts" else None if value is None else clean_text(str(value), _LIMITS[name])
        for name, value in zip(BASE_COLUMNS[:-1], values, strict=True)
    )


@settings(max_examples=300)
@given(
    who=st.lists(st.one_of(st.none(), TEXTS), min_size=4, max_size=4),
    what=st.lists(TEXTS, min_size=4, max_size=4),
    repeats=st.integers(1, 3),
)
def test_remembered_columns_are_what_cleaning_them_afresh_gives(
    who: list[str | None], what: list[str], repeats: int
) -> None:
    project, agent, name, session = who
    actor, source, action, resource = what
    for _ in range(repeats):
        event = AuditEvent(
            actor=actor,
            source=source,
            action=action,
            resource=resource,
            result="ok",
            reason="r",
            code=None if session is None else session[:5],
            project_id=project,
            agent_id=agent,
            agent_name=name,
            session_id=session,
        )
        assert normalised_row(event)[:-1] == _expected(event)


def test_long_values_are_cleaned_but_not_remembered() -> None:
    _remembered_columns.cache_clear()
    short = AuditEvent(
        actor="agent:a", source="aws", action="s3:GetObject", resource="r", result="ok"
    )
    normalised_row(short)
    remembered = _remembered_columns.cache_info().currsize
    long_resource = "arn:aws:s3:::bucket/" + "k" * MAX_REMEMBERED_CHARS
    event = AuditEvent(
        actor="agent:a", source="aws", action="s3:GetObject", resource=long_resource, result="ok"
    )
    assert normalised_row(event)[9] == clean_text(long_resource, _LIMITS["resource"])
    assert _remembered_columns.cache_info().currsize == remembered
