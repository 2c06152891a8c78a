"""The hash chain itself: any change, removal, insertion or re-ordering is found, at the
first event it affects."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tether.audit.chain import BASE_COLUMNS, GENESIS, ChainHead, ChainWalker, link, walk_export


def events(count: int) -> list[dict]:
    rows = [
        (f"ev{i}", 1_700_000_000_000 + i, "p", "a", "agent", "s", "agent:a", "anthropic",
         "model:messages", "anthropic:model/m", "allow", None, "ok", f'{{"n": {i}}}')
        for i in range(count)
    ]  # fmt: skip
    linked, _ = link(rows, ChainHead(0, GENESIS))
    return [
        dict(zip((*BASE_COLUMNS, "seq", "prev_hash", "hash"), row, strict=True)) for row in linked
    ]


def walk(chain: list[dict]) -> ChainWalker:
    walker = ChainWalker()
    for event in chain:
        if not walker.feed(event):
            break
    return walker


def test_an_untouched_chain_is_intact() -> None:
    report = walk(events(20)).report()
    assert report.intact and report.checked == 20 and report.head.seq == 20


@given(st.data())
def test_changing_any_column_of_any_event_is_found_there(data: st.DataObject) -> None:
    chain = events(12)
    index = data.draw(st.integers(0, 11))
    column = data.draw(st.sampled_from(BASE_COLUMNS))
    original = chain[index][column]
    replacement = data.draw(st.one_of(st.text(max_size=8), st.integers(), st.none()))
    if replacement == original:
        return
    chain[index][column] = replacement
    broken = walk(chain).report().first_break
    assert broken is not None and broken.seq == index + 1
    assert "changed after it was written" in broken.problem


@given(st.integers(0, 11))
def test_removing_any_event_is_found(index: int) -> None:
    chain = events(12)
    del chain[index]
    walker = walk(chain)
    if index == 11:
        walker.expect_head(ChainHead(12, events(12)[-1]["hash"]))
    broken = walker.report().first_break
    assert broken is not None
    assert "missing" in broken.problem or "removed" in broken.problem


def test_swapping_two_events_is_found() -> None:
    chain = events(6)
    chain[2], chain[3] = chain[3], chain[2]
    broken = walk(chain).report().first_break
    assert broken is not None and broken.seq == 4


def test_an_export_file_is_checked_from_its_first_event_and_bad_lines_are_breaks() -> None:
    chain = events(10)
    lines = [orjson.dumps(e) for e in chain[4:]]
    report = walk_export(lines)
    assert report.intact and report.checked == 6 and report.head.seq == 10
    broken = walk_export([*lines[:2], b"not json", *lines[2:]]).first_break
    assert broken is not None and broken.event_id == "line 3"
