"""Reading the quarantine topic as it grows, filtered by the headers (no value parsed to skip).

Without ``follow`` the tail reads up to the end offsets of its start and returns; a topic
that does not exist yet is ``TopicsMissing``. With ``follow`` it is never blind: it says
once that it waits for a topic not created yet; every ``refresh`` seconds it looks for
partitions it does not read yet (the topic's first ones included), which it reads from
their beginning, since all they hold came after the start; and when the broker stops
answering it says so and, once the broker answers again, reads on with a fresh consumer
from the offsets already shown. Each record is shown once, in order per partition.
"""

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schemas.codec import loads
from streams.broker import kafka_io
from streams.errors import TopicsMissing
from streams.settings import DistillSettings


def format_line(record: dict) -> str:
    source = record["source"]
    where = f"{source['topic']}:{source['partition']}:{source['offset']}"
    return (f"{record['stage']:<10} {record['reason']:<26} run={record['run_id'] or '-'} "
            f"at={where} {record['errors'][0]}")


def missing(settings: DistillSettings, name: str) -> TopicsMissing:
    return TopicsMissing(
        f"topic {name} does not exist on {settings.bootstrap}: no worker has run with "
        f"DISTILL_TOPIC_PREFIX={settings.topic_prefix!r} yet.\n"
        "Operator action: check DISTILL_TOPIC_PREFIX, or start `distill worker` (it creates the topic); "
        "`distill quarantine tail --follow` waits for it."
    )


class _Reading:
    """One consumer over the partitions found so far, and the next offset to show of each."""

    def __init__(self, settings: DistillSettings, name: str) -> None:
        self.settings, self.name = settings, name
        self.next: dict[TopicPartition, int] = {}
        self.reader: AIOKafkaConsumer | None = None

    async def open(self) -> None:
        """A fresh consumer, at the offsets reached (the one before is closed)."""
        await self.close()
        reader = kafka_io.consumer(self.settings)
        try:
            await reader.start()
        except BaseException:
            await kafka_io.close(reader)
            raise
        self.reader = reader
        self._assign()

    async def close(self) -> None:
        if self.reader is not None:
            reader, self.reader = self.reader, None
            await kafka_io.close(reader)

    async def add(self, count: int, at_end: bool) -> bool:
        """Read partitions below ``count`` not read yet, from their end or beginning."""
        new = [TopicPartition(self.name, p) for p in range(count) if TopicPartition(self.name, p) not in self.next]
        if not new:
            return False
        offsets = await (self.reader.end_offsets(new) if at_end else self.reader.beginning_offsets(new))
        self.next.update(offsets)
        self._assign()
        return True

    def _assign(self) -> None:
        # assign() forgets every position: seek all, not only the new partitions.
        self.reader.assign(list(self.next))
        for tp, offset in self.next.items():
            self.reader.seek(tp, offset)

    async def batch(self) -> list:
        """The messages not shown yet of one fetch, in order per partition."""
        fetched = await self.reader.getmany(timeout_ms=500)
        fresh = []
        for tp, messages in fetched.items():
            for message in messages:
                if message.offset >= self.next.get(tp, 0):
                    fresh.append(message)
                    self.next[tp] = message.offset + 1
        return fresh

    async def reached(self, ends: dict[TopicPartition, int]) -> bool:
        # Positions, not offsets: transaction markers take offsets no message has.
        return all([await self.reader.position(tp) >= end for tp, end in ends.items()])


class _Watch:
    """What a following tail looks at now and then: new partitions, and the broker's absence."""

    def __init__(self, settings: DistillSettings, admin, reading: _Reading, waiting: bool, say) -> None:
        self.settings, self.admin, self.reading, self.say = settings, admin, reading, say
        self.waiting, self.lost = waiting, False
        if waiting:
            say(f"waiting for topic {reading.name} to be created (by `distill worker` or `distill ingest`); Ctrl-C stops")
        else:
            say(f"following topic {reading.name} ({len(reading.next)} partitions); Ctrl-C stops")

    async def look(self) -> bool:
        """Take up partitions found since; False while the broker does not answer."""
        where = self.settings.bootstrap
        try:
            count = await kafka_io.partition_count(self.admin, self.reading.name)
            if self.lost:
                await self.reading.open()
            added = await self.reading.add(count or 0, at_end=False)
        except KafkaError:
            if not self.lost:
                self.say(f"lost the broker at {where}; waiting for it to come back (Ctrl-C stops)")
            self.lost = True
            return False
        if self.lost:
            self.say(f"the broker at {where} answers again; reading on from the records shown")
            self.lost = False
        if added and self.waiting:
            self.say(f"topic {self.reading.name} is there; showing its records")
            self.waiting = False
        return True


async def tail(
    settings: DistillSettings, reasons: set[str], stage: str | None, from_beginning: bool, follow: bool,
    show: Callable[[dict, bytes], None], say: Callable[[str], None] = lambda line: None, refresh: float = 1.0,
) -> int:
    """Show the matching records (``show``); ``say`` tells what a following tail waits for."""
    name = settings.topic("quarantine")
    shown = 0
    reading = _Reading(settings, name)
    async with kafka_io.started(kafka_io.admin(settings)) as admin:
        count = await kafka_io.partition_count(admin, name)
        if count is None and not follow:
            raise missing(settings, name)
        try:
            await reading.open()
            await reading.add(count or 0, at_end=not from_beginning)
            ends = {} if follow else await reading.reader.end_offsets(list(reading.next))
            watch = _Watch(settings, admin, reading, count is None, say) if follow else None
            looked = moved = time.monotonic()
            while True:
                if watch and time.monotonic() - looked >= refresh:
                    looked = time.monotonic()
                    if not await watch.look():
                        await asyncio.sleep(refresh)
                        continue
                batch = await reading.batch()
                moved = time.monotonic() if batch else moved
                for message in batch:
                    headers = {k: v.decode() for k, v in message.headers or ()}
                    if reasons and headers.get("reason") not in reasons:
                        continue
                    if stage and headers.get("stage") != stage:
                        continue
                    show(loads(message.value), message.value)
                    shown += 1
                if not follow and await reading.reached(ends):
                    return shown
                if not follow and time.monotonic() - moved > settings.broker_timeout:
                    raise kafka_io.stalled(settings, name)
        finally:
            await reading.close()
