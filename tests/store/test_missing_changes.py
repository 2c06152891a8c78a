"""The ids the change feed looks for, as ranges: split as ids land, given up when old or
when too many ranges are held, each id noted once."""

from __future__ import annotations

from tether.store.missing_changes import MAX_RANGES, MissingChanges


def test_an_id_landing_splits_its_range() -> None:
    missing = MissingChanges()
    missing.note(10, 19, at=1.0)
    missing.landed(14)
    missing.landed(10)
    missing.landed(99)
    assert missing.ranges() == [(11, 13), (15, 19)]
    assert len(missing) == 8 and 14 not in missing and 15 in missing


def test_ids_noted_again_are_not_looked_for_twice() -> None:
    """A change whose handler failed is read again, and passes over the same ids again."""
    missing = MissingChanges()
    missing.note(5, 9, at=1.0)
    missing.landed(7)
    missing.note(5, 9, at=2.0)
    missing.note(5, 12, at=2.0)
    assert missing.ranges() == [(5, 6), (8, 9), (10, 12)]


def test_old_ranges_are_given_up_first_and_their_number_is_bounded() -> None:
    missing = MissingChanges()
    for n in range(MAX_RANGES + 5):
        missing.note(2 * n, 2 * n, at=float(n))
    assert len(missing) == MAX_RANGES and missing.ranges()[0] == (10, 10)
    missing.forget_before(float(MAX_RANGES))
    assert missing.ranges() == [(2 * n, 2 * n) for n in range(MAX_RANGES + 1, MAX_RANGES + 5)]
