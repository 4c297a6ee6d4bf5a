"""The open pair windows of one pair partition, in memory: what a sweep for due windows reads.

The ``pair_windows`` rows are the durable truth: an open row carries the stream time past
which it closes and when it last took a run. This index is a view of them, rebuilt from the
table at the first message of a partition after a rebalance, as the index of waiting scores
is (``streams.faust_app.pending``). It was a table of its own, written when a window opened and
deleted when it closed: two changelog messages a window, about half a message a run.

Beside the windows it keeps a lower bound of their close times, so a sweep by stream time
looks at the windows only when one of them may be due: the per-message cost does not grow
with the number of open windows.
"""

from collections.abc import Callable, Iterable

from streams.faust_app.health import OpenWindow


class OpenWindows:
    """One partition's open windows by key, with a lower bound of their close times."""

    def __init__(self, windows: Iterable[OpenWindow] = ()) -> None:
        self._windows = {window.key: window for window in windows}
        self._bound()

    def __len__(self) -> int:
        return len(self._windows)

    def __iter__(self):
        return iter(self._windows.values())

    @property
    def earliest_close(self) -> float:
        """No open window closes by stream time before this (inf: none is open)."""
        return self._closes_at

    def note(self, window: OpenWindow) -> None:
        """The window is open, as of now: a new one, or one that just took a run."""
        self._windows[window.key] = window
        self._closes_at = min(self._closes_at, window.closes_at)

    def discard(self, key: str) -> None:
        """The window closed (the bound stays a lower bound; the next sweep tightens it)."""
        self._windows.pop(key, None)

    def take_due(self, is_due: Callable[[OpenWindow], bool]) -> list[str]:
        """Remove and return the keys of the windows that are due, in key order."""
        due = sorted(key for key, window in self._windows.items() if is_due(window))
        for key in due:
            del self._windows[key]
        self._bound()
        return due

    def _bound(self) -> None:
        self._closes_at = min((w.closes_at for w in self._windows.values()), default=float("inf"))
