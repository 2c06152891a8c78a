"""A byte stream cut into lines the same way however it is chunked, a line of any length."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.web.lines import LineSplitter

STREAM = b"first\nsecond\r\n\n" + b"x" * 300_000 + b"\nlast without a newline"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=30))
def test_any_chunking_gives_the_same_lines(cuts: list[int]) -> None:
    splitter = LineSplitter()
    edges = [0, *sorted(set(cuts)), len(STREAM)]
    lines = [line for a, b in itertools.pairwise(edges) for line in splitter.feed(STREAM[a:b])]
    last = splitter.end()
    assert [*lines, last] == STREAM.split(b"\n")
    assert splitter.end() is None
