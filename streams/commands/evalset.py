"""``distill evalset add|list|remove``: the evaluation sets on the compacted ``eval-sets`` topic.

A set is written in one Kafka transaction, its new items and the tombstones of its items
that are gone together, so a read_committed reader (every worker) sees the old set or the
new one, never a mix. The transactional id is the set's: two commands on one set at once
cannot interleave (the later fences the earlier, which fails).
"""

from dataclasses import dataclass

from schemas.codec import loads
from streams.broker import kafka_io
from streams.broker.topics import EVAL_SETS
from streams.commands.evalset_files import EvalSet, check_name
from streams.errors import EvalSetError
from streams.faust_app.evalsets import decode_item, encode_item
from streams.rules.decontamination import EvalIndex, EvalItem, version_of
from streams.settings import DistillSettings

RECORD_OVERHEAD = 1024  # a record batch's header and a record's framing, generously
TRANSACTION_TIMEOUT_MS = 300_000  # the broker aborts a set left half-written (a killed command) after this


@dataclass(frozen=True)
class SetSummary:
    """A registered set as ``list`` shows it."""

    name: str
    items: int
    fields: list[str]
    sequences: int | None = None  # word sequences indexed, when asked for

    def to_dict(self) -> dict:
        shown = {"set": self.name, "items": self.items, "fields": self.fields}
        return shown | ({"sequences": self.sequences} if self.sequences is not None else {})


@dataclass(frozen=True)
class Published:
    """What ``add`` wrote."""

    name: str
    items: int  # items published
    retracted: int  # tombstones: items of the set on the topic that the new version lacks
    fields: list[str]
    sequences: int

    def to_dict(self) -> dict:
        return {"set": self.name, "items": self.items, "retracted": self.retracted,
                "fields": self.fields, "sequences": self.sequences}


async def add_eval_set(settings: DistillSettings, eval_set: EvalSet) -> Published:
    """Publish ``eval_set`` whole, replacing the set of that name if there is one."""
    records = [encode_item(item) for item in eval_set.items]
    await kafka_io.ensure_topics(settings)
    await _check_sizes(settings, eval_set.name, records)
    old = await _keys_of(settings, eval_set.name)
    gone = sorted(old - {key for key, _ in records})
    await _publish(settings, eval_set.name, records + [(key, None) for key in gone])
    sequences = len(EvalIndex.build(eval_set.items))
    return Published(eval_set.name, len(records), len(gone), eval_set.fields, sequences)


async def remove_eval_set(settings: DistillSettings, name: str) -> int:
    """Tombstone every item of set ``name``; how many."""
    check_name(name)
    await kafka_io.ensure_topics(settings)
    keys = sorted(await _keys_of(settings, name))
    if not keys:
        sets = ", ".join(s.name for s in await list_eval_sets(settings)) or "none"
        raise EvalSetError(f"no evaluation set {name!r} on {settings.topic(EVAL_SETS.name)} (sets: {sets}).\n"
                           "Operator action: check the name (`distill evalset list`) and DISTILL_TOPIC_PREFIX.")
    await _publish(settings, name, [(key, None) for key in keys])
    return len(keys)


async def registered_sets(settings: DistillSettings) -> dict:
    """The sets on the topic now: ``{"version": ..., "sets": {name: items}}``, the version being
    what every worker judges its runs against once its view has read them ("" for none, and
    for a topic not made yet). Receipts carry it: the sets a dataset was cleaned against."""
    name = settings.topic(EVAL_SETS.name)
    items = []
    if not await kafka_io.missing_topics(settings, [name]):
        live, _ = await kafka_io.latest_values(settings, name)
        items = [item for key, value in live.items() if (item := decode_item(key, value))]
    sets: dict[str, int] = {}
    for item in items:
        sets[item.set_name] = sets.get(item.set_name, 0) + 1
    return {"version": version_of(items), "sets": dict(sorted(sets.items()))}


async def evalset_version(settings: DistillSettings) -> str:
    return (await registered_sets(settings))["version"]


async def list_eval_sets(settings: DistillSettings, sequences: bool = False) -> list[SetSummary]:
    """The registered sets by name: item counts, indexed fields and, if asked, word sequences."""
    name = settings.topic(EVAL_SETS.name)
    await kafka_io.require_topics(settings, [name])
    live, _ = await kafka_io.latest_values(settings, name)
    by_set: dict[str, list[EvalItem]] = {}
    for key, value in live.items():
        if item := decode_item(key, value):
            by_set.setdefault(item.set_name, []).append(item)
    return [
        SetSummary(set_name, len(items), sorted({f for i in items for f in i.fields}),
                   len(EvalIndex.build(items)) if sequences else None)
        for set_name, items in sorted(by_set.items())
    ]


async def _check_sizes(settings: DistillSettings, name: str, records: list[tuple[bytes, bytes]]) -> None:
    """Every record fits a message of the topic as it is (a topic made before its limit was
    raised keeps the broker's 1 MiB)."""
    topic = settings.topic(EVAL_SETS.name)
    largest = max(records, key=lambda record: len(record[0]) + len(record[1]))
    size = len(largest[0]) + len(largest[1])
    limit = int(await kafka_io.topic_config(settings, topic, "max.message.bytes") or EVAL_SETS.max_message_bytes)
    if size + RECORD_OVERHEAD <= limit:
        return
    action = "index fewer fields of this set (--field), or leave the item out."
    if limit < EVAL_SETS.max_message_bytes:
        action = (f"raise the topic's limit to the {EVAL_SETS.max_message_bytes:,} bytes distill gives it (e.g. "
                  f"kafka-configs.sh --alter --entity-type topics --entity-name {topic} "
                  f"--add-config max.message.bytes={EVAL_SETS.max_message_bytes}), or " + action)
    raise EvalSetError(
        f"evaluation set {name!r}, item {loads(largest[1])['item_id']!r}: {size:,} bytes on the topic, more than "
        f"the {limit - RECORD_OVERHEAD:,} a message of {topic} may have (its max.message.bytes is {limit:,}).\n"
        f"Operator action: {action}")


async def _keys_of(settings: DistillSettings, name: str) -> set[bytes]:
    """The live keys of set ``name`` on the topic."""
    live, _ = await kafka_io.latest_values(settings, settings.topic(EVAL_SETS.name))
    prefix = f"{name}/".encode("utf-8")
    return {key for key in live if key.startswith(prefix)}


async def _publish(settings: DistillSettings, name: str, records: list[tuple[bytes, bytes | None]]) -> None:
    """``records`` in one transaction: all of them become visible, or none."""
    topic = settings.topic(EVAL_SETS.name)
    producer = kafka_io.producer(
        settings, transactional_id=f"{settings.application_id}-evalset-{name}",
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS, max_request_size=EVAL_SETS.max_message_bytes,
    )
    async with kafka_io.started(producer):
        async with producer.transaction():
            sent = [await producer.send(topic, value, key=key) for key, value in records]
            for delivery in sent:
                await delivery
