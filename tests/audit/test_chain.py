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


def test_an_export_must_start_at_1_unless_anchored_or_named_and_bad_lines_are_breaks() -> None:
    chain = events(10)
    whole = [orjson.dumps(e) for e in chain]
    full = walk_export(whole)
    assert full.intact and full.checked == 10 and (full.start_seq, full.start) == (1, "genesis")

    cut = whole[4:]
    refused = walk_export(cut)
    assert not refused.intact and refused.first_break is not None
    assert "starts at #5, not #1" in refused.first_break.problem

    named = walk_export(cut, from_seq=5)
    assert named.intact and named.checked == 6 and named.head.seq == 10
    assert (named.start_seq, named.start) == (5, "from-seq")
    assert not walk_export(cut, from_seq=3).intact

    anchored = walk_export(cut, anchor=ChainHead(4, chain[3]["hash"]))
    assert anchored.intact and anchored.start == "anchor"
    wrong = walk_export(cut, anchor=ChainHead(4, "f" * 64)).first_break
    assert wrong is not None and wrong.seq == 5

    forged_start = dict(chain[0], prev_hash="a" * 64)
    assert not walk_export([orjson.dumps(forged_start), *whole[1:]]).intact

    broken = walk_export([*whole[:2], b"not json", *whole[2:]]).first_break
    assert broken is not None and broken.event_id == "line 3"
