"""The registered evaluation sets (SPEC 12) as a worker sees them, and their record on the topic.

Every worker judges every run against every set, so this is a plain reader of the whole
compacted ``eval-sets`` topic (as the file manifest is), not a Faust table. It reads
read_committed: ``distill evalset add`` writes a set in one transaction, so a set is seen
whole or not at all. The index is rebuilt when a burst of changes has settled (a set of
thousands of items arrives as many fetches), not per message, and off the event loop.

The record: key ``NAME/{item id}``, value ``{"set": NAME, "item_id": ID, "fields": {field:
text}}`` (the indexed string fields only); a tombstone removes the item.
"""

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import TopicPartition

from schemas.codec import dumps, loads
from streams.broker import kafka_io
from streams.broker.topics import EVAL_SETS
from streams.rules.decontamination import EvalIndex, EvalItem
from streams.settings import DistillSettings

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.5  # no change for this long: the burst is over, rebuild
LONGEST_DELAY = 5.0  # changes that never settle still take effect this soon


def item_key(set_name: str, item_id: str) -> bytes:
    return f"{set_name}/{item_id}".encode("utf-8")


def encode_item(item: EvalItem) -> tuple[bytes, bytes]:
    """(key, value) of an item's record."""
    return item_key(item.set_name, item.item_id), dumps(
        {"set": item.set_name, "item_id": item.item_id, "fields": item.fields})


def decode_item(key: bytes | None, value: bytes) -> EvalItem | None:
    """The item of a record, or None when the record is not one (wrong shape, or a key that is
    not its ``set/item_id``)."""
    try:
        obj = loads(value)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    set_name, item_id, fields = obj.get("set"), obj.get("item_id"), obj.get("fields")
    if not (isinstance(set_name, str) and isinstance(item_id, str) and isinstance(fields, dict)
            and all(isinstance(v, str) for v in fields.values())):
        return None
    if key != item_key(set_name, item_id):
        return None
    return EvalItem(set_name, item_id, fields)


class EvalSetView:
    """``index`` (an ``EvalIndex`` of every live item) and its ``version``, kept current.

    Built with ``items`` (agent tests) it is ready at once and follows nothing. ``on_change``
    (a function or coroutine function) is called after a rebuild that changed the version."""

    def __init__(self, settings: DistillSettings, on_change: Callable[[], Any] | None = None, *,
                 items: Iterable[EvalItem] | None = None) -> None:
        self.settings = settings
        self.on_change = on_change
        self.items: dict[bytes, EvalItem] = {}
        self.ready = asyncio.Event()
        self.index = EvalIndex.build(())
        self._position = 0  # the next offset of the topic to read, once loaded
        if items is not None:
            self.items = {item_key(i.set_name, i.item_id): i for i in items}
            self.index = EvalIndex.build(self.items.values())
            self.ready.set()

    @property
    def version(self) -> str:
        return self.index.version

    def apply(self, key: bytes | None, value: bytes | None, offset: int = -1) -> None:
        if key is None:
            return
        item = None if value is None else decode_item(key, value)
        if value is not None and item is None:
            log.warning("eval-sets offset %d, key %r: not an evaluation item record; ignored", offset, key)
        if item is None:
            self.items.pop(key, None)
        else:
            self.items[key] = item

    async def load(self) -> None:
        """Read the topic to its end and build the index (then ``ready``). The worker does it
        before Faust starts, so its join has the sets the moment it gets its partitions."""
        name = self.settings.topic(EVAL_SETS.name)
        await kafka_io.ensure_topics(self.settings, [EVAL_SETS])
        tp = TopicPartition(name, 0)
        async with kafka_io.started(kafka_io.consumer(self.settings)) as reader:
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]
            while await reader.position(tp) < end:
                await self._read(reader, 500)
            self._position = await reader.position(tp)
        await self._rebuild()
        self.ready.set()
        log.info("evaluation sets loaded: %s (version %s)", self.index.sets, self.version or "none")

    async def follow(self) -> None:
        """Keep the index current from where ``load`` stopped (loading first if it has not)."""
        if not self.ready.is_set():
            await self.load()
        tp = TopicPartition(self.settings.topic(EVAL_SETS.name), 0)
        async with kafka_io.started(kafka_io.consumer(self.settings)) as reader:
            reader.assign([tp])
            reader.seek(tp, self._position)
            while True:
                if not await self._read(reader, int(LONGEST_DELAY * 1000)):
                    continue
                changed = time.monotonic()
                while await self._read(reader, int(SETTLE_SECONDS * 1000)) and time.monotonic() - changed < LONGEST_DELAY:
                    pass
                if await self._rebuild():
                    await self._changed()

    async def _read(self, reader, timeout_ms: int) -> int:
        """Apply one fetch; how many messages it had."""
        count = 0
        for messages in (await reader.getmany(timeout_ms=timeout_ms)).values():
            for message in messages:
                self.apply(message.key, message.value, message.offset)
            count += len(messages)
        return count

    async def _rebuild(self) -> bool:
        """A new index of the live items (in a thread: a large set takes a while); did the version change?"""
        before = self.version
        self.index = await asyncio.to_thread(EvalIndex.build, list(self.items.values()))
        if self.version != before:
            log.info("evaluation sets now %s (version %s)", self.index.sets, self.version or "none")
        return self.version != before

    async def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            result = self.on_change()
            if inspect.isawaitable(result):
                await result
        except Exception:  # the view keeps following whatever the callback does
            log.exception("evaluation sets: the on_change callback failed")
