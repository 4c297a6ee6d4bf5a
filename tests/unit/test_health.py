"""The stall verdict behind /health, and the overdue windows of ``distill stats``."""

from faust.types import TP

from streams.faust_app.health import InputView, Limits, OpenWindow, PairView, Progress, StallDetector, windows_past_close

LIMITS = Limits(stall_timeout=60, pair_idle_close=120, tick_interval=30)


def partition(**overrides) -> InputView:
    values = dict(topic="in.evidence", partition=0, stable_end=100, processed_to=100, committed=100,
                  quiet_for=0.0, fetched_ago=0.1)
    return InputView(**(values | overrides))


def pairs(*windows: OpenWindow, stream_time: float = 0.0, quiet_since: float = 0.0) -> list[PairView]:
    return [PairView(1, list(windows), stream_time, quiet_since)]


def test_caught_up_partitions_are_healthy_however_long_quiet():
    verdict = StallDetector(LIMITS).check([partition(quiet_for=10_000)], [], now=10_000, wall_now=10_000)
    assert verdict.healthy and verdict.reasons == []


def test_input_waiting_on_a_partition_quiet_for_the_stall_timeout_is_a_stall():
    detector = StallDetector(LIMITS)
    assert detector.check([partition(waiting=50, quiet_for=59)], [], 0, 0).healthy
    verdict = detector.check([partition(waiting=50, quiet_for=61)], [], 0, 0)
    assert verdict.reasons == ["in.evidence[0]: 50 messages from offset 100 on wait, and nothing was "
                               "processed there for 61 s"]


def test_only_offsets_past_what_was_processed_may_hold_input():
    assert not partition(stable_end=100).may_wait()
    assert partition(stable_end=101).may_wait()  # a message, or a transaction marker: a read decides
    fresh = partition(processed_to=None, committed=40, stable_end=41)  # nothing processed since the rebalance
    assert fresh.start == 40 and fresh.may_wait()
    # Markers only (the read found no message): however long quiet, no stall.
    assert StallDetector(LIMITS).check([partition(stable_end=103, waiting=0, quiet_for=10_000)], [], 0, 0).healthy


def test_a_partition_the_consumer_stopped_fetching_is_a_stall():
    assert StallDetector(LIMITS).check([partition(fetched_ago=61, quiet_for=30)], [], 0, 0).healthy
    verdict = StallDetector(LIMITS).check([partition(fetched_ago=61, quiet_for=61)], [], 0, 0)
    assert verdict.reasons == ["in.evidence[0]: not fetched for 61 s, nothing processed there for 61 s"]


def test_processed_input_that_never_commits_is_a_stall():
    detector = StallDetector(LIMITS)
    stuck = partition(committed=90)
    assert detector.check([stuck], [], now=0, wall_now=0).healthy
    assert detector.check([partition(committed=95)], [], now=50, wall_now=0).healthy  # it moved: clock restarts
    assert detector.check([partition(committed=95)], [], now=110, wall_now=0).healthy
    verdict = detector.check([partition(committed=95)], [], now=111, wall_now=0)
    assert verdict.reasons == ["in.evidence[0]: processed to 100, committed only to 95 and no commit for 61 s "
                               "(its transaction does not commit)"]
    assert detector.check([partition(committed=100)], [], now=112, wall_now=0).healthy


def test_idle_windows_stall_only_past_idle_close_tick_and_timeout_of_a_quiet_partition():
    window = OpenWindow("task-1|0", closes_at=1e12, active_at=1000)
    due = 1000 + 120 + 30 + 60
    assert StallDetector(LIMITS).check([], pairs(window), 0, wall_now=due - 1).healthy
    verdict = StallDetector(LIMITS).check([], pairs(window), 0, wall_now=due + 1)
    assert verdict.reasons == [
        "pair partition 1: 1 windows open past their idle close (idle 211 s; they close 120 s after "
        "their last run, DISTILL_PAIR_IDLE_CLOSE), e.g. 'task-1|0'"
    ]
    # The partition received something lately: idleness is the stream's, windows may wait.
    assert StallDetector(LIMITS).check([], pairs(window, quiet_since=due - 100), 0, wall_now=due + 1).healthy


def test_windows_passed_by_stream_time_stall_once_they_stay_open_a_whole_timeout():
    detector = StallDetector(LIMITS)
    passed = OpenWindow("task-2|0", closes_at=500, active_at=10**10)
    assert detector.check([], pairs(passed, stream_time=501), now=100, wall_now=0).healthy
    assert detector.check([], pairs(passed, stream_time=501), now=160, wall_now=0).healthy
    verdict = detector.check([], pairs(passed, stream_time=501), now=161, wall_now=0)
    assert verdict.reasons == ["pair partition 1: 1 windows passed by stream time and still open after 61 s, e.g. 'task-2|0'"]
    # Closed (or no longer held): the clock starts over.
    assert detector.check([], pairs(stream_time=501), now=170, wall_now=0).healthy
    assert detector.check([], pairs(passed, stream_time=501), now=171, wall_now=0).healthy


def test_progress_starts_over_at_a_rebalance():
    progress = Progress()
    tp = TP("in.evidence", 3)
    progress.processed(tp, 41)
    assert progress.next_offset[tp] == 42 and progress.moved_at[tp] >= progress.resumed_at
    progress.resumed("sender")
    assert progress.next_offset == {} and progress.resumed_at >= progress.moved_at[tp]


def test_stats_flags_windows_passed_by_stream_time_or_idle_on_a_caught_up_partition():
    windows = [
        (0, OpenWindow("passed", closes_at=99, active_at=10_000)),
        (0, OpenWindow("open", closes_at=101, active_at=10_000)),
        (1, OpenWindow("idle", closes_at=10**9, active_at=0)),
        (2, OpenWindow("idle-but-backlog", closes_at=10**9, active_at=0)),
    ]
    overdue = windows_past_close(windows, {0: 100.0}, caught_up={0, 1}, wall_now=10_000, limits=LIMITS)
    assert overdue == ["idle", "passed"]
