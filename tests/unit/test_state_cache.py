"""The write-behind state cache: reads see writes at once, the store and changelog once a commit."""

import asyncio
from types import SimpleNamespace

from faust.types import TP

from streams.state_cache import StateCache


class PartitionedStore:
    """The shape of the RocksDB store the cache uses: one mapping per partition."""

    def __init__(self) -> None:
        self._dbs: dict[int, dict] = {}

    def _db_for_partition(self, partition: int) -> dict:
        return self._dbs.setdefault(partition, {})


class RecordingOutbox:
    def __init__(self) -> None:
        self.added: list[tuple] = []

    def add(self, source, topic, key, value, headers=None, partition=None) -> None:
        self.added.append((source, topic, key, value, partition))

    async def flush(self) -> int:
        return len(self.added)


def cache_over(store) -> tuple[StateCache, RecordingOutbox]:
    table = SimpleNamespace(data=store, changelog_topic=SimpleNamespace(get_topic_name=lambda: "app-runs-changelog"))
    outbox = RecordingOutbox()
    return StateCache(SimpleNamespace(in_transaction=True), {"runs": table}, outbox), outbox


def test_reads_see_writes_before_the_flush_and_the_store_only_after_it():
    store = PartitionedStore()
    cache, outbox = cache_over(store)
    cache.set("runs", 1, b"a", b"1")
    cache.set("runs", 1, b"a", b"2")
    assert cache.get("runs", 1, b"a") == b"2" and store._db_for_partition(1) == {}
    assert asyncio.run(cache.flush()) == 1
    assert store._db_for_partition(1) == {b"a": b"2"}
    assert outbox.added == [(TP("app-runs-changelog", 1), "app-runs-changelog", b"a", b"2", 1)]
    assert cache.get("runs", 1, b"a") == b"2" and cache.get("runs", 0, b"a") is None


def test_a_key_set_and_deleted_between_two_commits_never_reaches_the_changelog():
    store = PartitionedStore()
    store._db_for_partition(0)[b"old"] = b"x"
    cache, outbox = cache_over(store)
    cache.set("runs", 0, b"new", b"1")
    cache.delete("runs", 0, b"new")
    cache.delete("runs", 0, b"old")  # stored: its tombstone must go out
    asyncio.run(cache.flush())
    assert outbox.added == [(TP("app-runs-changelog", 0), "app-runs-changelog", b"old", None, 0)]
    assert store._db_for_partition(0) == {}


def test_objects_are_encoded_once_at_the_flush():
    encoded = []

    def encode(value: dict) -> bytes:
        encoded.append(value)
        return repr(value).encode()

    cache, outbox = cache_over(PartitionedStore())
    for n in range(3):
        cache.set_decoded("runs", 0, b"w", {"n": n}, encode)
        assert cache.get_decoded("runs", 0, b"w", lambda raw: None) == {"n": n}
    assert encoded == []
    asyncio.run(cache.flush())
    assert encoded == [{"n": 2}] and outbox.added[0][3] == b"{'n': 2}"
    assert cache.get_decoded("runs", 0, b"w", lambda raw: raw.decode()) == "{'n': 2}"


def test_items_are_the_rows_the_next_commit_leaves_and_forget_drops_what_is_unflushed():
    store = PartitionedStore()
    store._db_for_partition(0).update({b"a": b"1", b"b": b"2", b"__faust\x00offset__": b"7"})
    store._db_for_partition(1).update({b"z": b"9"})
    cache, _ = cache_over(store)
    cache.set("runs", 0, b"b", b"3")
    cache.delete("runs", 0, b"a")
    cache.set("runs", 0, b"c", b"4")
    assert list(cache.items("runs", 0)) == [(b"b", b"3"), (b"c", b"4")]
    assert list(cache.all_items("runs")) == [(b"b", b"3"), (b"c", b"4"), (b"z", b"9")]
    cache.forget()
    assert list(cache.items("runs", 0)) == [(b"a", b"1"), (b"b", b"2")]


def test_the_agent_tests_in_memory_store_is_one_dict_for_every_partition():
    memory = SimpleNamespace(data={b"a": b"1"})
    cache, outbox = cache_over(memory)
    cache.set("runs", 1, b"b", b"2")
    assert sorted(cache.all_items("runs")) == [(b"a", b"1"), (b"b", b"2")]
    assert asyncio.run(cache.flush()) == 1 and memory.data == {b"a": b"1", b"b": b"2"} and outbox.added == []
