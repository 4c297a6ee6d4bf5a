"""Holding scores back while the evidence published before them is unread (streams/faust_app/alignment.py)."""

from types import SimpleNamespace

from faust.types import TP

from streams.faust_app.alignment import InputAlignment


def events(partition: int, *published_s: float, first_offset: int = 0):
    return [SimpleNamespace(message=SimpleNamespace(partition=partition, timestamp=t, offset=first_offset + i))
            for i, t in enumerate(published_s)]


def more_evidence(partition: int, next_offset: int) -> bool:
    return False  # not read to its end


def test_scores_published_after_the_evidence_read_are_ahead_while_more_evidence_waits():
    alignment = InputAlignment()
    alignment.read(events(0, 10.0, 11.0), is_evidence=True)
    alignment.read(events(0, 10.5), is_evidence=False)
    assert not alignment.scores_ahead(0, more_evidence)
    alignment.read(events(0, 11.2), is_evidence=False)
    assert alignment.scores_ahead(0, more_evidence)
    assert not alignment.scores_ahead(0, lambda partition, next_offset: next_offset >= 2)  # all evidence read
    alignment.read(events(0, 11.2, first_offset=2), is_evidence=True)
    assert not alignment.scores_ahead(0, more_evidence)


def test_no_evidence_read_yet_holds_scores_only_if_evidence_waits():
    alignment = InputAlignment()
    alignment.read(events(1, 5.0), is_evidence=False)
    assert alignment.scores_ahead(1, more_evidence)
    assert not alignment.scores_ahead(1, lambda partition, next_offset: True)
    assert not alignment.scores_ahead(0, more_evidence)  # nothing read on partition 0


def test_a_hold_without_new_evidence_ends_and_is_not_taken_again_until_evidence_comes():
    alignment = InputAlignment()
    alignment.read(events(0, 1.0), is_evidence=True)
    alignment.read(events(0, 9.0), is_evidence=False)
    alignment.held.add(TP("scores", 0))
    assert alignment.idle(3600) == []
    assert alignment.idle(0) == [TP("scores", 0)] and not alignment.held
    assert not alignment.scores_ahead(0, more_evidence)  # the evidence it waited for did not come
    alignment.read(events(0, 2.0, first_offset=1), is_evidence=True)
    assert alignment.scores_ahead(0, more_evidence)
