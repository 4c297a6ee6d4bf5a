"""Plain aiokafka at the edge: connection options, topic set-up, reading and writing topics.

The CLI commands (ingest, export, stats, wait, tail, replay) use these; the worker
uses Faust. Both take their connection settings from ``DistillSettings`` here.
"""

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import faust
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import CommitFailedError, KafkaError

from streams.broker.topics import TOPIC_SPECS, TopicSpec
from streams.errors import BrokerUnavailable, TopicLayoutError, TopicsMissing
from streams.settings import DistillSettings


def _ssl_context(settings: DistillSettings) -> ssl.SSLContext | None:
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)


def client_options(settings: DistillSettings) -> dict[str, Any]:
    """Connection options for any aiokafka client; the password never leaves this dict."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "security_protocol": settings.security_protocol,
    }
    context = _ssl_context(settings)
    if context:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
        }
    return options


def faust_credentials(settings: DistillSettings) -> Any:
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            mechanism=settings.sasl_mechanism,
            ssl_context=_ssl_context(settings),
        )
    return _ssl_context(settings)


def producer(settings: DistillSettings, **extra: Any) -> AIOKafkaProducer:
    """``extra`` adds to or overrides the defaults (a topic of larger messages: ``max_request_size``)."""
    defaults = dict(linger_ms=20, max_request_size=2 * 1024 * 1024, enable_idempotence=True, acks="all")
    return AIOKafkaProducer(**client_options(settings), **(defaults | extra))


def consumer(settings: DistillSettings, *topics: str, **extra: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics, **client_options(settings), enable_auto_commit=False,
        isolation_level="read_committed", auto_offset_reset="earliest", **extra,
    )


def admin(settings: DistillSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_options(settings))


Client = AIOKafkaConsumer | AIOKafkaProducer | AIOKafkaAdminClient


@asynccontextmanager
async def started(client: Client) -> AsyncIterator[Any]:
    """The client started for the block and closed after it, also when ``start()`` fails:
    a client that fails to bootstrap has already made its connections and tasks, and left
    unclosed it prints ``Unclosed AIOKafkaConsumer`` after the command's own message."""
    try:
        await client.start()
        yield client
    finally:
        await close(client)


async def close(client: Client) -> None:
    """Close a client; what goes wrong in closing is no news to the person running the command.

    A consumer stopped while its broker is away lets the cancellation of its own fetch task
    out of ``stop()``; that one is swallowed, a cancellation of the caller's task is not."""
    try:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():
            raise
    except KafkaError:
        pass


async def ensure_topics(settings: DistillSettings, specs: Iterable[TopicSpec] = TOPIC_SPECS) -> None:
    """Create missing topics; refuse a layout that would break co-partitioning."""
    async with started(admin(settings)) as client:
        specs = list(specs)
        existing = await _partition_counts(client, [settings.topic(s.name) for s in specs])
        missing = [
            NewTopic(settings.topic(s.name), s.partition_count(settings), settings.replication_factor, topic_configs=s.config())
            for s in specs if settings.topic(s.name) not in existing
        ]
        if missing:
            try:
                await client.create_topics(missing)
            except KafkaError as exc:
                if "TopicAlreadyExists" not in type(exc).__name__:
                    raise
        for spec in specs:
            name = settings.topic(spec.name)
            want = spec.partition_count(settings)
            if name in existing and existing[name] != want:
                raise TopicLayoutError(
                    f"topic {name} has {existing[name]} partitions but DISTILL_PARTITIONS needs {want}.\n"
                    "Operator action: set DISTILL_PARTITIONS to the existing count, or use a new DISTILL_TOPIC_PREFIX."
                )


async def delete_topics(settings: DistillSettings, names: list[str]) -> None:
    async with started(admin(settings)) as client:
        present = set(await client.list_topics())
        doomed = [n for n in names if n in present]
        if doomed:
            await client.delete_topics(doomed)


async def delete_prefixed(settings: DistillSettings) -> list[str]:
    """Delete every topic of this prefix and of its application id (changelogs, Faust's own)."""
    if not settings.topic_prefix:
        raise ValueError("DISTILL_TOPIC_PREFIX is empty: every topic of the cluster has that prefix; "
                         "set the prefix whose topics are to go")
    async with started(admin(settings)) as client:
        doomed = [t for t in await client.list_topics()
                  if t.startswith(settings.topic_prefix) or t.startswith(settings.application_id + "-")]
        if doomed:
            await client.delete_topics(doomed)
        return doomed


async def partitions_on_broker(settings: DistillSettings) -> int:
    """How many partitions the cluster holds, internal topics included: part of what a benchmark
    ran on (a local broker also holds the topics of interrupted test runs)."""
    async with started(admin(settings)) as client:
        return sum((await _partition_counts(client, list(await client.list_topics()))).values())


async def _partition_counts(client: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    # Listed first: a metadata request naming a missing topic lets the broker auto-create it.
    present = set(await client.list_topics())
    wanted = [n for n in names if n in present]
    if not wanted:
        return {}
    described = await client.describe_topics(wanted)
    return {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}


async def topic_config(settings: DistillSettings, name: str, key: str) -> str | None:
    """The value a topic has now for config ``key`` (its own, else the broker's default)."""
    async with started(admin(settings)) as client:
        [response] = await client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name, {key: None})])
    for resource in response.resources:  # (error code, message, type, name, entries): an entry is (key, value, ...)
        for entry in resource[4]:
            if entry[0] == key:
                return entry[1]
    return None


async def partition_count(client: AIOKafkaAdminClient, name: str) -> int | None:
    """Partitions of a topic now (None: no such topic), never creating it."""
    return (await _partition_counts(client, [name])).get(name)


async def missing_topics(settings: DistillSettings, names: list[str]) -> list[str]:
    async with started(admin(settings)) as client:
        present = set(await client.list_topics())
    return [n for n in names if n not in present]


async def require_topics(settings: DistillSettings, names: list[str]) -> None:
    """``TopicsMissing`` unless every one of ``names`` exists: reading a prefix nothing has
    used yet would show zeros and empty files, as if all were well."""
    if absent := await missing_topics(settings, names):
        which = f"topic {absent[0]}" if len(absent) == 1 else f"{len(absent)} topics ({', '.join(absent)})"
        raise TopicsMissing(
            f"no {which} on {settings.bootstrap}: nothing has run with "
            f"DISTILL_TOPIC_PREFIX={settings.topic_prefix!r} yet.\n"
            "Operator action: check DISTILL_TOPIC_PREFIX, or start `distill worker` (or `distill ingest`), "
            "which creates the topics, and run the command again."
        )


async def end_offsets(settings: DistillSettings, names: list[str]) -> dict[TopicPartition, int]:
    """Next offset to be written, per partition (of the topics that exist)."""
    async with started(consumer(settings)) as reader:
        partitions = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(reader.partitions_for_topic(name) or await _fetch_partitions(reader, name))
        ]
        return await reader.end_offsets(partitions) if partitions else {}


async def _fetch_partitions(reader: AIOKafkaConsumer, name: str) -> set[int]:
    await reader._client.force_metadata_update()
    return reader.partitions_for_topic(name) or set()


async def read_topic(
    settings: DistillSettings, name: str, ends: dict[TopicPartition, int] | None = None, give_up: bool = True
) -> AsyncIterator[Any]:
    """Every committed message of a topic, from its beginning up to ``ends`` (default: its end now).

    A broker that goes away meanwhile is waited for (the consumer reconnects on its own),
    for ``settings.broker_timeout`` seconds without progress at most, then ``BrokerUnavailable``;
    without ``give_up`` (the worker, whose supervisor is Faust) as long as it takes."""
    if ends is None:
        ends = await end_offsets(settings, [name])
    todo = {tp: end for tp, end in ends.items() if end > 0}
    if not todo:
        return
    async with started(consumer(settings)) as reader:
        reader.assign(list(todo))
        await reader.seek_to_beginning(*todo)
        moved = time.monotonic()
        while todo:
            batch = await reader.getmany(*todo, timeout_ms=500)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < todo.get(tp, 0):
                        yield message
            moved = time.monotonic() if batch else moved
            for tp in list(todo):
                # Compare positions, not offsets: transaction markers take offsets no message has.
                if await reader.position(tp) >= todo[tp]:
                    del todo[tp]
                    moved = time.monotonic()
            if give_up and todo and time.monotonic() - moved > settings.broker_timeout:
                raise stalled(settings, name)


def stalled(settings: DistillSettings, name: str) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"reading {name} made no progress for {settings.broker_timeout:.0f} s: the broker at "
        f"{settings.bootstrap} stopped answering.\n"
        "Operator action: check the broker (`distill kafka status`), then run the command again "
        "(DISTILL_BROKER_TIMEOUT sets how long a command waits for it)."
    )


async def latest_values(settings: DistillSettings, name: str) -> tuple[dict[bytes, bytes], dict[str, int]]:
    """The live value of every key of a compacted topic, and the end offsets read up to."""
    ends = await end_offsets(settings, [name])
    live: dict[bytes, bytes] = {}
    async for message in read_topic(settings, name, ends):
        if message.value is None:
            live.pop(message.key, None)
        else:
            live[message.key] = message.value
    return live, {str(tp.partition): end for tp, end in sorted(ends.items())}


async def committed_offsets(settings: DistillSettings, group: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The offsets a consumer group has committed (0 where it has none)."""
    async with started(admin(settings)) as client:
        for attempt in range(40):
            try:
                offsets = await client.list_consumer_group_offsets(group, partitions=partitions)
                break
            except KafkaError as exc:
                # A fresh broker creates its offsets topic on first use: the coordinator comes soon.
                if not exc.retriable or attempt == 39:
                    raise
                await asyncio.sleep(0.25)
    return {tp: (meta.offset if meta.offset >= 0 else 0) for tp, meta in offsets.items()}


async def wait_topics_gone(settings: DistillSettings, names: list[str], timeout: float = 60.0) -> None:
    """Topic deletion finishes in the background; creating a topic again must wait for it."""
    async with started(admin(settings)) as client:
        for _ in range(int(timeout / 0.25)):
            if not set(names) & set(await client.list_topics()):
                return
            await asyncio.sleep(0.25)
    raise TopicLayoutError(f"topics {names} were not deleted within {timeout:.0f} s")


async def rewind_group(
    settings: DistillSettings, group: str, partitions: list[TopicPartition], timeout: float = 60.0
) -> None:
    """Commit offset 0 for a group with no members, so its next start reads from the beginning.

    Just after its last member left, the group coordinator may still refuse a commit from
    outside the group (UnknownMemberId) while it settles: try again for a while."""
    deadline = time.monotonic() + timeout
    while True:
        async with started(AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False)) as committer:
            try:
                committer.assign(partitions)
                await committer.commit({tp: 0 for tp in partitions})
                return
            except CommitFailedError:
                if time.monotonic() > deadline:
                    raise
        await asyncio.sleep(1.0)


async def group_state(settings: DistillSettings, group: str) -> tuple[str, int]:
    """The consumer group's state (``Stable``, ``PreparingRebalance``, ``Empty``, ``Dead``...)
    and its number of members."""
    async with started(admin(settings)) as client:
        responses = await client.describe_consumer_groups([group])
    for response in responses:
        for described in response.groups:
            # (error_code, group, state, protocol_type, protocol, members, ...) in every version
            if described[1] == group:
                return described[2], len(described[5])
    return "Dead", 0


async def group_has_members(settings: DistillSettings, group: str) -> bool:
    return (await group_state(settings, group))[1] > 0


async def unconsumed(settings: DistillSettings, group: str, names: list[str],
                     ends: dict[TopicPartition, int] | None = None,
                     skip_key: bytes | None = None) -> dict[TopicPartition, int]:
    """Messages a group has not committed yet, per partition (partitions with none left out);
    messages keyed ``skip_key`` do not count.

    A committed offset short of the end is not always lag: a transactional producer's
    commit marker takes the last offset, and no consumer ever commits past it. So the
    gap is read (read_committed) up to the last stable offset and only real messages
    count; what lies past the last stable offset (an open transaction) counts whole."""
    ends = ends if ends is not None else await end_offsets(settings, names)
    committed = await committed_offsets(settings, group, list(ends))
    gaps = {tp: (committed.get(tp, 0), end) for tp, end in ends.items() if committed.get(tp, 0) < end}
    return await messages_between(settings, gaps, skip_key)


async def messages_between(settings: DistillSettings, gaps: dict[TopicPartition, tuple[int, int]],
                           skip_key: bytes | None = None) -> dict[TopicPartition, int]:
    """Committed messages at offsets [start, stop) of each partition (read_committed; those
    with none left out): markers and aborted messages take offsets but are no messages.
    What lies past the last stable offset (an open transaction) counts whole, and so does
    what could not be read within 15 s."""
    if not gaps:
        return {}
    counts = {tp: 0 for tp in gaps}
    async with started(consumer(settings)) as reader:
        reader.assign(list(gaps))
        for tp, (start, _) in gaps.items():
            reader.seek(tp, start)
        todo = dict(gaps)
        deadline = asyncio.get_running_loop().time() + 15
        while todo and asyncio.get_running_loop().time() < deadline:
            batch = await reader.getmany(*todo, timeout_ms=200)
            for tp, messages in batch.items():
                counts[tp] += sum(1 for m in messages if m.offset < todo[tp][1] and (skip_key is None or m.key != skip_key))
            for tp in list(todo):
                stable = reader.last_stable_offset(tp)
                position = await reader.position(tp)
                if stable is not None and position >= min(stable, todo[tp][1]):
                    counts[tp] += max(0, todo[tp][1] - max(stable, position))
                    del todo[tp]
        for tp in todo:  # not read in time: count the rest rather than guess
            counts[tp] += todo[tp][1] - await reader.position(tp)
    return {tp: n for tp, n in counts.items() if n}


async def has_messages_between(settings: DistillSettings, tp: TopicPartition, start: int, stop: int) -> bool:
    """Is there a committed message at an offset in [start, stop)? (Transaction markers and
    aborted messages take offsets but are no messages.)"""
    return bool(await messages_between(settings, {tp: (start, stop)}))


def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as the Java client does)."""
    return default_partitions([key], partitions)[0]


_MURMUR_M = 0x5BD1E995


def default_partitions(keys: Sequence[bytes], partitions: int) -> list[int]:
    """The partition Kafka's default partitioner gives each of ``keys``: Kafka's murmur2
    (``Utils.murmur2``, as aiokafka's) in numpy over the keys of one length side by side (an
    outbox flush partitions thousands of keys, mostly of a few lengths: sample and record ids,
    content keys), a Python loop per word of a key, not per key and word (aiokafka's byte-at-a-time
    loop was ~3% of the worker, a word-at-a-time one in Python ~3 µs a key)."""
    found = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(index)
    m = np.uint32(_MURMUR_M)
    for length, indexes in by_length.items():
        data = np.frombuffer(b"".join([keys[i] for i in indexes]), np.uint8).reshape(len(indexes), length)
        h = np.full(len(indexes), (0x9747B28C ^ length) & 0xFFFFFFFF, np.uint32)
        words = length >> 2
        if words:
            columns = np.ascontiguousarray(data[:, :words << 2]).view("<u4").astype(np.uint32, copy=False)
            for j in range(words):
                k = columns[:, j] * m
                k ^= k >> np.uint32(24)
                k *= m
                h *= m
                h ^= k
        tail = length & 3
        if tail:
            rest = data[:, words << 2:].astype(np.uint32)
            if tail == 3:
                h ^= rest[:, 2] << np.uint32(16)
            if tail >= 2:
                h ^= rest[:, 1] << np.uint32(8)
            h ^= rest[:, 0]
            h *= m
        h ^= h >> np.uint32(13)
        h *= m
        h ^= h >> np.uint32(15)
        for index, partition in zip(indexes, ((h & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)).tolist()):
            found[index] = partition
    return found
