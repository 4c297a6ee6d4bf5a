"""The ``distill stats`` table warns of pair windows open past their close."""

from rich.console import Console

from streams.cli.data import stats_table
from streams.commands.stats import Stats


def rendered(stats: Stats) -> str:
    console = Console(width=140, record=True)
    console.print(stats_table(stats))
    return console.export_text()


def test_windows_past_their_close_are_a_warning_with_an_example():
    text = rendered(Stats(open_windows=3, windows_past_close=["task-7|1776643200", "task-9|1776643200"]))
    assert "warning: pair windows open past their close (a stalled worker? see its /health)" in text
    assert "e.g. task-7|1776643200" in text


def test_no_warning_when_every_open_window_may_stay_open():
    assert "warning" not in rendered(Stats(open_windows=3))
