"""Following JSONL files as they grow (``distill ingest --follow``), resumable across restarts.

A followed file is known by device and inode, so a rename inside a followed folder keeps its
place. The state file (``streams.commands.follow_state``) keeps, per file, the byte offset up to which
every line has been published *and acknowledged*. Only complete lines go out: a last line without its newline waits. A file
renamed away is drained through its open handle (its last line too, once it is quiet for
``settle`` seconds); a file shorter than its offset, or whose first bytes changed, was
truncated or rewritten and is read again from its start.

A kill between an acknowledgement and the save cannot duplicate lines: every message carries
a ``distill-follow`` header (follower id, file, offset it ends at), the state keeps the input
positions after the last acknowledged message, and a restart reads the inputs from there and
moves each file past what a killed follower had published.
"""

import asyncio
import hashlib
import os
import signal
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from aiokafka.errors import KafkaError

from streams.broker import kafka_io
from streams.broker.preflight import check_connection
from streams.commands.follow_state import HEAD_BYTES, Cursor, OffsetStore, locked_store, offsets_file
from streams.commands.ingest import INPUT_ORDER, Line, message_for, read_lines
from streams.errors import BrokerUnavailable, DistillError
from streams.settings import DistillSettings

HEADER = "distill-follow"
# send(topic, key, value, headers) queues a message, in call order, and returns an awaitable
# that completes when the broker has acknowledged it (with an object that has .topic,
# .partition and .offset, as aiokafka's RecordMetadata, or None).
Send = Callable[[str, bytes, bytes, list[tuple[str, bytes]]], Awaitable[Awaitable[Any]]]
Mark = tuple[int, int, int]  # a file's (epoch, end offset, line number) as a header carries it


def header_mark(follower: str, key: str, epoch: int, line: Line) -> bytes:
    return f"{follower} {key} {epoch} {line.end} {line.number}".encode()


def published_marks(follower: str, headers: Iterable[list[tuple[str, bytes]]]) -> tuple[dict[str, Mark], int]:
    """The furthest mark of each file among messages of this follower, and how many there are."""
    marks: dict[str, Mark] = {}
    count = 0
    for message_headers in headers:
        for name, value in message_headers or ():
            parts = value.decode(errors="replace").split(" ") if name == HEADER else []
            if len(parts) == 5 and parts[0] == follower:
                count += 1
                mark = (int(parts[2]), int(parts[3]), int(parts[4]))
                marks[parts[1]] = max(marks.get(parts[1], mark), mark)
    return marks, count


def _head(handle: BinaryIO, end: int) -> str:
    return hashlib.sha1(os.pread(handle.fileno(), min(end, HEAD_BYTES), 0)).hexdigest()


@dataclass
class _Followed:
    key: str
    path: Path
    cursor: Cursor
    handle: BinaryIO | None = None
    seen: tuple[int, int] | None = None  # (size, mtime) when last read
    changed_at: float = 0.0
    gone: bool = False  # no longer at a followed path: drained until quiet, then dropped
    done: bool = False


class Follower:
    """Publishes the new complete lines of followed files, batch by batch, saving after acks."""

    def __init__(
        self, sources: dict[str, list[Path]], store: OffsetStore, send: Send, *, follower_id: str = "",
        poll_interval: float = 0.25, batch_lines: int = 5000, settle: float = 2.0, max_open: int = 256,
        progress: Callable[[str, int], None] = lambda topic, n: None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources, self.store, self.send = sources, store, send
        self.follower_id = follower_id or store.path.stem
        self.poll_interval, self.batch_lines, self.settle, self.max_open = poll_interval, batch_lines, settle, max_open
        self.progress, self.clock = progress, clock
        self.published = {topic: 0 for topic in INPUT_ORDER}
        self.files: dict[str, _Followed] = {}

    def resume(self, marks: dict[str, Mark]) -> None:
        """Move cursors past lines the log shows published after the last save."""
        for key, (epoch, end, number) in marks.items():
            cursor = self.store.cursors.setdefault(key, Cursor(topic=key.rsplit(":", 2)[0]))
            if (epoch, end) > (cursor.epoch, cursor.offset):
                cursor.epoch, cursor.offset, cursor.line, cursor.head = epoch, end, number, ""

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; the batch under way is acknowledged and saved first."""
        try:
            while True:
                more = await self.poll_once()
                if stop.is_set():
                    return
                if not more:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_interval)
        finally:
            self.close()

    async def poll_once(self) -> bool:
        """One batch over every file; True when some file has more lines already waiting."""
        now = self.clock()
        found = self._discover()
        for key, (path, topic) in found.items():
            followed = self.files.get(key)
            if followed is None:
                cursor = self.store.cursors.get(key) or self._same_file(path, topic, found) or Cursor(topic)
                self.store.cursors[key] = cursor
                followed = self.files[key] = _Followed(key, path, cursor, changed_at=now)
            followed.path, followed.cursor.path, followed.gone = path, str(path), False
        for key, followed in self.files.items():
            if key not in found and not followed.gone:
                followed.gone, followed.changed_at = True, now
        # Scores are read before evidence: a writer appends a run's evidence before its score,
        # so every score read here has its evidence read too. Evidence is acknowledged before
        # scores go out, as one-shot ingest does, so a batch joins without waiting.
        read = {topic: self._read_topic(topic, now) for topic in reversed(INPUT_ORDER)}
        for topic in INPUT_ORDER:
            acks = []
            for followed, lines, _ in read[topic]:
                for line in lines:
                    key, value = message_for(topic, followed.path.name, line)
                    mark = header_mark(self.follower_id, followed.key, followed.cursor.epoch, line)
                    acks.append(await self.send(topic, key, value, [(HEADER, mark)]))
            for acked in await asyncio.gather(*acks):
                self._note_position(acked)
        for topic in INPUT_ORDER:
            for followed, lines, head in read[topic]:
                last = lines[-1]
                followed.cursor.offset, followed.cursor.line, followed.cursor.head = last.end, last.number, head
                self.published[topic] += len(lines)
                self.progress(topic, len(lines))
        self._forget_done()
        self.store.save()
        self._close_idle()
        return any(len(lines) >= self.batch_lines for batch in read.values() for _, lines, _ in batch)

    def close(self) -> None:
        for followed in self.files.values():
            if followed.handle:
                followed.handle.close()
                followed.handle = None

    def _read_topic(self, topic: str, now: float) -> list[tuple[_Followed, list[Line], str]]:
        """The new lines of each file of a topic, in path order, with the head they end at."""
        batch = []
        mine = [f for f in self.files.values() if f.cursor.topic == topic]
        for followed in sorted(mine, key=lambda f: (not f.gone, str(f.path))):  # a rotated file's rest first
            lines, head = self._new_lines(followed, now)
            if lines:
                batch.append((followed, lines, head))
        return batch

    def _same_file(self, path: Path, topic: str, found: dict) -> Cursor | None:
        """The cursor of a file known at this path under another device number (a remount,
        a restored backup), if its first bytes are the same: it is taken over."""
        for key, cursor in list(self.store.cursors.items()):
            if key in found or key in self.files or (cursor.path, cursor.topic) != (str(path), topic) or not cursor.head:
                continue
            with suppress(OSError), path.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size >= cursor.offset and _head(handle, cursor.offset) == cursor.head:
                    return self.store.cursors.pop(key)
        return None

    def _discover(self) -> dict[str, tuple[Path, str]]:
        found: dict[str, tuple[Path, str]] = {}
        for topic in INPUT_ORDER:
            for root in self.sources.get(topic, []):
                for path in sorted(root.rglob("*.jsonl")) if root.is_dir() else [root]:
                    try:
                        info = path.stat()
                    except OSError:
                        continue  # between a rotation's rename and its new file
                    if stat.S_ISREG(info.st_mode):
                        found.setdefault(f"{topic}:{info.st_dev}:{info.st_ino}", (path, topic))
        return found

    def _open(self, followed: _Followed) -> BinaryIO | None:
        try:
            handle = followed.path.open("rb")
        except OSError:
            return None
        info = os.fstat(handle.fileno())
        if followed.key.endswith(f":{info.st_dev}:{info.st_ino}"):
            followed.handle = handle
            return handle
        handle.close()  # replaced since it was found: the next poll sees the new file
        return None

    def _new_lines(self, followed: _Followed, now: float) -> tuple[list[Line], str]:
        """Complete lines after the cursor (all lines of a gone file once it is quiet)."""
        handle = followed.handle or (None if followed.gone else self._open(followed))
        if handle is None:
            followed.done = followed.gone
            return [], ""
        info = os.fstat(handle.fileno())
        final = followed.gone and now - followed.changed_at >= self.settle
        if (info.st_size, info.st_mtime_ns) == followed.seen and not final:
            return [], ""
        if followed.seen != (info.st_size, info.st_mtime_ns):
            followed.seen, followed.changed_at = (info.st_size, info.st_mtime_ns), now
        cursor = followed.cursor
        rewritten = cursor.head and cursor.offset and _head(handle, cursor.offset) != cursor.head
        if info.st_size < cursor.offset or rewritten:
            cursor.epoch, cursor.offset, cursor.line, cursor.head = cursor.epoch + 1, 0, 0, ""
        handle.seek(cursor.offset)
        lines = list(islice(read_lines(handle, cursor.line, complete_only=not final), self.batch_lines))
        if len(lines) >= self.batch_lines:
            followed.seen = None  # more to read next poll, though the file may not change
        else:
            followed.done = final
        return lines, _head(handle, lines[-1].end) if lines else ""

    def _note_position(self, acked: Any) -> None:
        if acked is not None:
            name = f"{acked.topic}:{acked.partition}"
            self.store.positions[name] = max(self.store.positions.get(name, 0), acked.offset + 1)

    def _forget_done(self) -> None:
        """Drop gone files drained to their end; the state keeps only files still followed."""
        for key in [k for k, f in self.files.items() if f.done]:
            if self.files[key].handle:
                self.files[key].handle.close()
            del self.files[key]
        self.store.cursors = {k: c for k, c in self.store.cursors.items() if k in self.files}

    def _close_idle(self) -> None:
        """Bound open handles: the quietest followed files give theirs back (reopened on change)."""
        open_files = [f for f in self.files.values() if f.handle and not f.gone]
        for followed in sorted(open_files, key=lambda f: f.changed_at)[: max(0, len(open_files) - self.max_open)]:
            followed.handle.close()
            followed.handle, followed.seen = None, None


@dataclass
class FollowSummary:
    published: dict[str, int]
    files: list[str]
    offsets_file: str
    recovered: int  # messages a killed follower had published after its last save

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _headers_since(settings: DistillSettings, positions: dict[str, int]) -> list[list[tuple[str, bytes]]]:
    """Headers of every input message at or after the saved positions (what came after the save)."""
    ends = await kafka_io.end_offsets(settings, [settings.topic(t) for t in INPUT_ORDER])
    todo = {tp: end for tp, end in ends.items() if end > positions.get(f"{tp.topic}:{tp.partition}", 0)}
    if not todo:
        return []
    found: list[list[tuple[str, bytes]]] = []
    async with kafka_io.started(kafka_io.consumer(settings)) as reader:
        reader.assign(list(todo))
        for tp in todo:
            reader.seek(tp, positions.get(f"{tp.topic}:{tp.partition}", 0))
        while todo:
            for tp, messages in (await reader.getmany(*todo, timeout_ms=500)).items():
                found += [list(m.headers or ()) for m in messages if m.offset < todo.get(tp, 0)]
            for tp in list(todo):
                if await reader.position(tp) >= todo[tp]:
                    del todo[tp]
    return found


async def follow(
    settings: DistillSettings, sources: dict[str, list[Path]], stop: asyncio.Event,
    progress: Callable[[str, int], None] = lambda topic, n: None, poll_interval: float = 0.25,
) -> FollowSummary:
    """Publish what the files hold and what they gain until ``stop`` is set."""
    await kafka_io.ensure_topics(settings)
    path = offsets_file(settings, sources)
    with locked_store(path) as store:
        if not store.positions:  # first start: nothing of ours can be in the inputs past their ends
            ends = await kafka_io.end_offsets(settings, [settings.topic(t) for t in INPUT_ORDER])
            store.positions = {f"{tp.topic}:{tp.partition}": end for tp, end in ends.items()}
            store.save()
        marks, recovered = published_marks(path.stem, await _headers_since(settings, store.positions))
        async with kafka_io.started(kafka_io.producer(settings)) as producer:
            async def send(topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]):
                return await producer.send(settings.topic(topic), value, key=key, headers=headers)

            follower = Follower(sources, store, send, poll_interval=poll_interval, progress=progress)
            follower.resume(marks)
            await follower.run(stop)
        # Every message of ours is acknowledged: what the inputs hold now is behind any we send next.
        ends = await kafka_io.end_offsets(settings, [settings.topic(t) for t in INPUT_ORDER])
        for tp, end in ends.items():
            name = f"{tp.topic}:{tp.partition}"
            store.positions[name] = max(store.positions.get(name, 0), end)
        store.save()
    files = sorted(str(f.path) for f in follower.files.values())
    return FollowSummary(follower.published, files, str(path), recovered)


async def follow_until_signalled(
    settings: DistillSettings, sources: dict[str, list[Path]],
    progress: Callable[[str, int], None] = lambda topic, n: None, poll_interval: float = 0.25,
) -> FollowSummary:
    """``follow`` until SIGINT or SIGTERM; a second signal gives up on the batch under way."""
    loop, stop, task = asyncio.get_running_loop(), asyncio.Event(), asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set():
            task.cancel()
        stop.set()

    await check_connection(settings)  # a broker unreachable from the start: its cause, not "publishing failed"
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        return await follow(settings, sources, stop, progress, poll_interval)
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"publishing failed: {exc!r}. Lines not acknowledged are published on the next start.\n"
            f"Operator action: check that the broker at {settings.bootstrap} is up, then run the same command again."
        ) from None
    except asyncio.CancelledError:
        raise DistillError(
            "stopped before the last batch was acknowledged; the next --follow finds what of it reached the broker"
        ) from None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
