"""Is the worker moving? The verdict behind ``GET /health``, without I/O.

Faust's agents, timers and consumer can stop after a rebalance without an error (a
survivor of a killed worker once left 278 pair windows open for good, idle in ``select``),
so a worker watches its own progress: it is *stalled* when it holds work and nothing
moved for ``DISTILL_STALL_TIMEOUT`` seconds. Work, here, is either of:

- input on a held partition that is not processed (committed messages past the last one
  an agent finished), or a held partition the consumer no longer fetches;
- processed input whose offsets are not committed (a transaction that never commits
  leaves every output and table change of it invisible to read-committed readers);
- open pair windows past their close: idle past ``DISTILL_PAIR_IDLE_CLOSE`` (plus a tick)
  on a partition that is quiet, or passed by the partition's stream time.

``streams.faust_app.agents.watchdog`` gathers the views from the running app and serves the verdict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from faust.types import TP


@dataclass
class Progress:
    """When the agents last moved, in memory: one dict write an event."""

    next_offset: dict[TP, int] = field(default_factory=dict)  # after the last event processed
    moved_at: dict[TP, float] = field(default_factory=dict)  # monotonic time of that event
    resumed_at: float = field(default_factory=time.monotonic)  # start, or the last rebalance's end
    resumed_wall: float = field(default_factory=time.time)
    quiet_since: dict[int, float] = field(default_factory=dict)  # pair partition -> last non-tick message (wall)
    tick_read_at: dict[int, float] = field(default_factory=dict)  # pair partition -> last tick read (monotonic)
    tick_sent_at: float | None = None  # monotonic

    def processed(self, tp: TP, offset: int) -> None:
        self.next_offset[tp] = offset + 1
        self.moved_at[tp] = time.monotonic()

    def resumed(self, *_args, **_kwargs) -> None:
        """A rebalance ended: offsets start over from the committed ones, clocks from now.

        The quiet clocks too: a worker that gets back a pair partition it held two rebalances
        ago heard nothing of what another worker read from it in between. Left as they were,
        the first tick read after the pause counted that time as quiet and closed windows as
        idle whose runs were still to come."""
        self.next_offset.clear()
        self.quiet_since.clear()
        self.resumed_at, self.resumed_wall = time.monotonic(), time.time()


@dataclass(frozen=True)
class InputView:
    """One consumed partition this worker holds, as its consumer and agents see it."""

    topic: str
    partition: int
    stable_end: int | None  # the last stable offset, as of the last fetch
    processed_to: int | None  # next offset after the last event an agent finished (since the rebalance)
    committed: int | None  # the group's committed offset, as this worker last committed it
    quiet_for: float  # seconds since an agent last finished an event of it (or since the rebalance)
    fetched_ago: float | None  # seconds since the consumer last had a fetch answered for it
    waiting: int = 0  # committed messages from processed_to (or committed) to stable_end, where read

    @property
    def start(self) -> int:
        """Where unprocessed input would begin."""
        return self.processed_to if self.processed_to is not None else (self.committed or 0)

    def may_wait(self) -> bool:
        """Offsets lie past what was processed; markers and aborted records take offsets too,
        so only a read says whether they are messages (``waiting``)."""
        return self.stable_end is not None and self.stable_end > self.start


@dataclass(frozen=True)
class OpenWindow:
    key: str
    closes_at: float  # stream time past which it closes
    active_at: float  # wall-clock time it last took a run


@dataclass(frozen=True)
class PairView:
    """One pair partition this worker holds: its open windows and its clocks."""

    partition: int
    windows: list[OpenWindow]
    stream_time: float
    quiet_since: float  # wall-clock time of its last message other than an idle tick


@dataclass(frozen=True)
class Limits:
    stall_timeout: float
    pair_idle_close: float
    tick_interval: float
    commit_interval: float = 0.0  # how often the worker commits what it processed


@dataclass
class Verdict:
    healthy: bool
    reasons: list[str]

    def to_dict(self) -> dict:
        return {"healthy": self.healthy, "reasons": self.reasons}


@dataclass
class StallDetector:
    """Decides from views taken now; remembers since when a partition had windows due by
    stream time (closing them is part of the event that moves stream time, so a window
    still open past its close a whole stall timeout later is stuck)."""

    limits: Limits
    due_since: dict[int, float] = field(default_factory=dict)
    uncommitted_since: dict[tuple[str, int], tuple[int | None, float]] = field(default_factory=dict)

    def check(self, inputs: list[InputView], pairs: list[PairView], now: float, wall_now: float) -> Verdict:
        limits, reasons = self.limits, []
        for view in inputs:
            if view.quiet_for > limits.stall_timeout:
                if view.waiting:
                    reasons.append(
                        f"{view.topic}[{view.partition}]: {view.waiting} messages from offset {view.start} on "
                        f"wait, and nothing was processed there for {view.quiet_for:.0f} s"
                    )
                elif view.fetched_ago is not None and view.fetched_ago > limits.stall_timeout:
                    reasons.append(
                        f"{view.topic}[{view.partition}]: not fetched for {view.fetched_ago:.0f} s, "
                        f"nothing processed there for {view.quiet_for:.0f} s"
                    )
            reasons += self._commit_stalls(view, now)
        overdue_after = limits.pair_idle_close + limits.tick_interval + limits.stall_timeout
        for view in pairs:
            idle = [w for w in view.windows if wall_now - max(w.active_at, view.quiet_since) > overdue_after]
            if idle:
                oldest = wall_now - min(max(w.active_at, view.quiet_since) for w in idle)
                reasons.append(
                    f"pair partition {view.partition}: {len(idle)} windows open past their idle close "
                    f"(idle {oldest:.0f} s; they close {limits.pair_idle_close:.0f} s after their last run, "
                    f"DISTILL_PAIR_IDLE_CLOSE), e.g. {idle[0].key!r}"
                )
            due = [w for w in view.windows if view.stream_time > w.closes_at]
            if not due:
                self.due_since.pop(view.partition, None)
                continue
            since = self.due_since.setdefault(view.partition, now)
            if now - since > limits.stall_timeout:
                reasons.append(
                    f"pair partition {view.partition}: {len(due)} windows passed by stream time "
                    f"and still open after {now - since:.0f} s, e.g. {due[0].key!r}"
                )
        held = {view.partition for view in pairs}
        for partition in [p for p in self.due_since if p not in held]:
            del self.due_since[partition]
        consumed = {(view.topic, view.partition) for view in inputs}
        for tp in [tp for tp in self.uncommitted_since if tp not in consumed]:
            del self.uncommitted_since[tp]
        return Verdict(not reasons, reasons)

    def _commit_stalls(self, view: InputView, now: float) -> list[str]:
        """Processed past the committed offset, and the committed offset has not moved since."""
        tp = (view.topic, view.partition)
        if view.processed_to is None or (view.committed is not None and view.committed >= view.processed_to):
            self.uncommitted_since.pop(tp, None)
            return []
        committed, since = self.uncommitted_since.get(tp, (None, now))
        if committed != view.committed:
            committed, since = view.committed, now
        self.uncommitted_since[tp] = (committed, since)
        if now - since <= self.limits.stall_timeout + self.limits.commit_interval:
            return []
        return [f"{view.topic}[{view.partition}]: processed to {view.processed_to}, committed only to "
                f"{view.committed} and no commit for {now - since:.0f} s (its transaction does not commit)"]


def windows_past_close(
    windows: list[tuple[int, OpenWindow]], stream_times: dict[int, float], caught_up: set[int],
    wall_now: float, limits: Limits,
) -> list[str]:
    """Keys of open windows that should have closed, as seen from outside the worker
    (``distill stats``): passed by their partition's stream time, or idle past their idle
    close (and a tick) on a partition whose candidates are all consumed."""
    idle_after = limits.pair_idle_close + 2 * limits.tick_interval
    return sorted(
        window.key for partition, window in windows
        if stream_times.get(partition, float("-inf")) > window.closes_at
        or (partition in caught_up and wall_now - window.active_at > idle_after)
    )
