"""What the restore guard reads: the changelog offsets a restore did not apply."""

from faust.types import TP

from streams.faust_fixes.restore_guard import unread_ranges

RUNS, WINDOWS, EMPTY = TP("app-runs-changelog", 0), TP("app-open_windows-changelog", 1), TP("app-runs-changelog", 1)


def test_unread_ranges_are_the_offsets_past_what_was_applied_up_to_the_highwater():
    restored_to = {RUNS: 41, WINDOWS: 9}
    highwaters = {RUNS: 41, WINDOWS: 12, EMPTY: -1, TP("app-stream_time-changelog", 0): None}
    # runs: applied through its highwater (the last offset) -> nothing left; windows: 10-12 unread.
    assert unread_ranges(restored_to, highwaters) == {WINDOWS: (10, 13)}


def test_a_partition_nothing_was_applied_to_is_unread_from_its_start():
    assert unread_ranges({}, {RUNS: 3}) == {RUNS: (0, 4)}
