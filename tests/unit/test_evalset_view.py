"""The eval-sets record format, and the worker's view built from given items (no broker)."""

import pytest

from streams.faust_app.evalsets import EvalSetView, decode_item, encode_item
from streams.rules.decontamination import EvalIndex, EvalItem
from streams.settings import DistillSettings

ITEM = EvalItem("humaneval", "HumanEval/0", {"prompt": "def f(x):", "canonical_solution": "return x"})
LONG = " ".join(f"word{i}" for i in range(13))


def test_an_item_record_is_keyed_set_slash_id_and_holds_the_fields():
    key, value = encode_item(ITEM)
    assert key == b"humaneval/HumanEval/0"
    assert value == b'{"set":"humaneval","item_id":"HumanEval/0","fields":{"prompt":"def f(x):","canonical_solution":"return x"}}'
    assert decode_item(key, value) == ITEM


@pytest.mark.parametrize("key, value", [
    (b"s/1", b"{not json"),
    (b"s/1", b"[1]"),
    (b"s/1", b'{"set": "s", "item_id": 1, "fields": {}}'),
    (b"s/1", b'{"set": "s", "item_id": "1", "fields": {"a": 2}}'),
    (b"s/1", b'{"set": "s", "item_id": "1"}'),
    (b"s/2", b'{"set": "s", "item_id": "1", "fields": {}}'),
    (None, b'{"set": "s", "item_id": "1", "fields": {}}'),
])
def test_records_that_are_not_items_decode_to_none(key, value):
    assert decode_item(key, value) is None


async def test_a_view_of_given_items_is_ready_at_once(tmp_path):
    items = [ITEM, EvalItem("mini", "0", {"q": LONG})]
    view = EvalSetView(DistillSettings(data_dir=tmp_path), items=items)
    assert view.ready.is_set()
    assert view.version == EvalIndex.build(items).version and view.index.sets == {"humaneval": 1, "mini": 1}
    assert view.index.match(f"see {LONG}").item_id == "0"


async def test_an_empty_view_waits_for_its_topic_and_matches_nothing(tmp_path):
    view = EvalSetView(DistillSettings(data_dir=tmp_path))
    assert not view.ready.is_set() and view.version == "" and view.index.match(LONG) is None


def test_apply_keeps_the_live_items(tmp_path):
    view = EvalSetView(DistillSettings(data_dir=tmp_path))
    key, value = encode_item(ITEM)
    view.apply(key, value)
    view.apply(b"s/1", b"garbage")
    assert list(view.items.values()) == [ITEM]
    view.apply(key, None)
    assert view.items == {}
