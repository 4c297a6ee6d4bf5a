"""Following growing JSONL files, publishing to the real broker: the follower's ``send`` is a real
producer's, as ``distill ingest --follow`` wraps it, and what was published is read back from the
input topics; a restart is a new follower over the same state file."""

import asyncio
import os
from pathlib import Path

import orjson
import pytest
from aiokafka.errors import KafkaError

from streams.broker import kafka_io
from streams.commands.follow import INPUT_ORDER, Follower, OffsetStore, _headers_since, published_marks
from streams.commands.ingest import key_for, lines_of

# The producer of the ``log`` fixture lives on the session loop of the async fixtures.
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


class BrokerLog:
    """The follower's ``send`` through a real producer to the test's input topics (one partition
    each, so a topic reads back in the order sent). ``sent`` is the order of the follower's calls
    across topics, which no topic keeps."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.producer = kafka_io.producer(settings)
        self.sent: list[str] = []

    async def send(self, topic, key, value, headers):
        self.sent.append(topic)
        return await self.producer.send(self.settings.topic(topic), value, key=key, headers=headers)

    async def fail(self) -> None:
        """The producer goes away: the next send fails."""
        await self.producer.stop()

    async def recover(self) -> None:
        self.producer = kafka_io.producer(self.settings)
        await self.producer.start()

    async def messages(self, topic: str | None = None) -> list[tuple[str, bytes, bytes, list]]:
        found = []
        for name in INPUT_ORDER if topic is None else [topic]:
            found += [(name, m.key, m.value, list(m.headers or ()))
                      async for m in kafka_io.read_topic(self.settings, self.settings.topic(name))]
        return found

    async def values(self, topic: str | None = None) -> list[bytes]:
        return [value for _, _, value, _ in await self.messages(topic)]

    async def headers_since(self, positions: dict[str, int]) -> list[list]:
        return await _headers_since(self.settings, positions)


@pytest.fixture
async def log(make_settings):
    settings = make_settings(partitions=1)
    await kafka_io.ensure_topics(settings)
    broker_log = BrokerLog(settings)
    await broker_log.producer.start()
    yield broker_log
    await broker_log.producer.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def row(run_id: str, n: int = 0) -> bytes:
    return orjson.dumps({"run_id": run_id, "n": n}) + b"\n"


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state" / "follower.json"


def follower(state: Path, log: BrokerLog, *, evidence=(), scores=(), clock=None, **options) -> Follower:
    sources = {"evidence": list(evidence), "scored-runs": list(scores)}
    return Follower(sources, OffsetStore.load(state), log.send, clock=clock or Clock(), **options)


async def test_publishes_complete_lines_only_and_waits_for_the_rest(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("r1") + b'{"run_id": "r2", "n"')
    f = follower(state, log, evidence=[path])
    await f.poll_once()
    assert await log.values() == [row("r1").rstrip()]
    await f.poll_once()
    assert len(await log.messages()) == 1
    append(path, b": 2}\n\n" + row("r3"))
    await f.poll_once()
    assert await log.values() == [row("r1").rstrip(), b'{"run_id": "r2", "n": 2}', row("r3").rstrip()]
    assert [k for _, k, _, _ in await log.messages()] == [b"r1", b"r2", b"r3"]
    assert f.published == {"evidence": 3, "scored-runs": 0}


async def test_keys_and_values_are_those_of_one_shot_ingest(tmp_path, state, log):
    scores = tmp_path / "s.jsonl"
    scores.write_bytes(orjson.dumps({"evidence_run_id": "r9"}) + b"\nnot json\n\n" + orjson.dumps({"run_id": "x"}) + b"\n")
    await follower(state, log, scores=[scores]).poll_once()
    one_shot = [(key_for(line, "evidence_run_id", f"s.jsonl:{n}"), line) for n, line in lines_of(scores)]
    assert [(k, v) for _, k, v, _ in await log.messages()] == one_shot
    assert [k for k, _ in one_shot] == [b"r9", b"unkeyed:s.jsonl:2", b"unkeyed:s.jsonl:4"]
    assert {t for t, *_ in await log.messages()} == {"scored-runs"}


async def test_evidence_goes_out_before_scores_in_a_batch(tmp_path, state, log):
    (tmp_path / "e.jsonl").write_bytes(row("r1"))
    (tmp_path / "s.jsonl").write_bytes(orjson.dumps({"evidence_run_id": "r1"}) + b"\n")
    await follower(state, log, scores=[tmp_path / "s.jsonl"], evidence=[tmp_path / "e.jsonl"]).poll_once()
    assert log.sent == ["evidence", "scored-runs"]


async def test_new_files_in_a_followed_folder_are_picked_up(tmp_path, state, log):
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(row("a"))
    f = follower(state, log, evidence=[folder])
    await f.poll_once()
    (folder / "nested").mkdir()
    (folder / "nested" / "b.jsonl").write_bytes(row("b"))
    (folder / "notes.txt").write_bytes(row("ignored"))
    append(folder / "a.jsonl", row("a", 1))
    await f.poll_once()
    assert sorted(await log.values()) == sorted([row("a").rstrip(), row("a", 1).rstrip(), row("b").rstrip()])


async def test_a_file_renamed_away_is_drained_and_the_new_one_read_from_its_start(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("old", 1))
    clock = Clock()
    f = follower(state, log, evidence=[path], clock=clock, settle=2.0)
    await f.poll_once()
    append(path, row("old", 2) + b'{"run_id": "old", "n": 3')  # written just before the rotation
    path.rename(tmp_path / "e.jsonl.1")
    path.write_bytes(row("new", 1))
    await f.poll_once()
    assert await log.values() == [row("old", 1).rstrip(), row("old", 2).rstrip(), row("new", 1).rstrip()]
    append(tmp_path / "e.jsonl.1", b"}\n")  # the writer finishes its line in the old file
    clock.now += 0.5
    await f.poll_once()
    assert (await log.values())[-1] == b'{"run_id": "old", "n": 3}'
    clock.now += 5
    await f.poll_once()
    assert len(f.files) == 1 and len(OffsetStore.load(state).cursors) == 1
    assert len(await log.messages()) == 4


async def test_a_rotated_file_left_without_a_last_newline_is_published_once_quiet(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("old", 1) + b'{"run_id": "old", "n": 2}')
    clock = Clock()
    f = follower(state, log, evidence=[path], clock=clock, settle=2.0)
    await f.poll_once()
    path.rename(tmp_path / "e.jsonl.1")
    await f.poll_once()
    assert len(await log.messages()) == 1
    clock.now += 3
    await f.poll_once()
    assert await log.values() == [row("old", 1).rstrip(), b'{"run_id": "old", "n": 2}']
    assert f.files == {}


async def test_a_rename_inside_a_followed_folder_keeps_its_place(tmp_path, state, log):
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "today.jsonl").write_bytes(row("a", 1))
    f = follower(state, log, evidence=[folder])
    await f.poll_once()
    (folder / "today.jsonl").rename(folder / "yesterday.jsonl")
    append(folder / "yesterday.jsonl", row("a", 2))
    await f.poll_once()
    assert await log.values() == [row("a", 1).rstrip(), row("a", 2).rstrip()]


async def test_truncation_and_rewrite_start_the_file_over(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1) + row("a", 2) + row("a", 3))
    f = follower(state, log, evidence=[path])
    await f.poll_once()
    with path.open("r+b") as handle:  # truncated in place, shorter than what was read
        handle.truncate(0)
        handle.write(row("b", 1))
    await f.poll_once()
    assert (await log.values())[3:] == [row("b", 1).rstrip()]
    with path.open("r+b") as handle:  # truncated and rewritten longer before the next look
        handle.truncate(0)
        handle.write(row("c", 1) + row("c", 2))
    await f.poll_once()
    assert (await log.values())[4:] == [row("c", 1).rstrip(), row("c", 2).rstrip()]


async def test_restart_resumes_without_repeating_or_skipping(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1) + b'{"run_id": "a", ')
    first = follower(state, log, evidence=[path])
    await first.poll_once()
    first.close()
    append(path, b'"n": 2}\n' + row("a", 3))
    second = follower(state, log, evidence=[path])
    await second.poll_once()
    await second.poll_once()
    assert await log.values() == [row("a", 1).rstrip(), b'{"run_id": "a", "n": 2}', row("a", 3).rstrip()]
    saved = orjson.loads(state.read_bytes())
    assert [c["offset"] for c in saved["files"].values()] == [path.stat().st_size]
    assert not list(state.parent.glob("*.tmp"))


async def test_a_file_rewritten_while_stopped_is_read_from_its_start(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    await follower(state, log, evidence=[path]).poll_once()
    path.write_bytes(row("b", 1) + row("b", 2))  # same inode, new content, longer
    await follower(state, log, evidence=[path]).poll_once()
    assert await log.values() == [row("a", 1).rstrip(), row("b", 1).rstrip(), row("b", 2).rstrip()]


async def test_an_unacknowledged_batch_is_not_saved_and_goes_out_again(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    await follower(state, log, evidence=[path]).poll_once()
    append(path, row("a", 2))
    await log.fail()
    with pytest.raises(KafkaError):
        await follower(state, log, evidence=[path]).poll_once()
    await log.recover()
    await follower(state, log, evidence=[path]).poll_once()
    assert await log.values() == [row("a", 1).rstrip(), row("a", 2).rstrip()]


async def test_a_kill_between_ack_and_save_does_not_duplicate(tmp_path, state, log, monkeypatch):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    await follower(state, log, evidence=[path], follower_id="me").poll_once()
    append(path, row("a", 2) + row("a", 3))
    killed = follower(state, log, evidence=[path], follower_id="me")
    monkeypatch.setattr(OffsetStore, "save", lambda self: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        await killed.poll_once()  # acknowledged, never saved
    monkeypatch.undo()
    append(path, row("a", 4))
    store = OffsetStore.load(state)
    marks, count = published_marks("me", await log.headers_since(store.positions))
    assert count == 2
    restarted = Follower({"evidence": [path]}, store, log.send, follower_id="me")
    restarted.resume(marks)
    await restarted.poll_once()
    assert await log.values() == [row("a", n).rstrip() for n in (1, 2, 3, 4)]


async def test_marks_of_other_followers_are_ignored(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    await follower(state, log, evidence=[path], follower_id="other").poll_once()
    assert published_marks("me", await log.headers_since({})) == ({}, 0)
    marks, count = published_marks("other", await log.headers_since({}))
    assert count == 1 and list(marks.values()) == [(0, path.stat().st_size, 1)]


async def test_run_stops_on_the_event_and_saves(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    stop = asyncio.Event()
    f = follower(state, log, evidence=[path], poll_interval=0.01)
    task = asyncio.create_task(f.run(stop))
    deadline = asyncio.get_running_loop().time() + 30
    while len(await log.messages()) < 1 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    append(path, row("a", 2))
    while len(await log.messages()) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [c.offset for c in OffsetStore.load(state).cursors.values()] == [path.stat().st_size]


async def test_a_file_whose_device_number_changed_keeps_its_place(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    await follower(state, log, evidence=[path]).poll_once()
    saved = orjson.loads(state.read_bytes())  # as after a remount: same path, same bytes, other device
    saved["files"] = {f"evidence:999:{key.rsplit(':', 1)[1]}": c for key, c in saved["files"].items()}
    state.write_bytes(orjson.dumps(saved))
    append(path, row("a", 2))
    restarted = follower(state, log, evidence=[path])
    await restarted.poll_once()
    assert await log.values() == [row("a", 1).rstrip(), row("a", 2).rstrip()]
    assert len(OffsetStore.load(state).cursors) == 1


async def test_an_idle_follower_does_not_rewrite_its_state(tmp_path, state, log):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    f = follower(state, log, evidence=[path])
    await f.poll_once()
    inode = os.stat(state).st_ino
    await f.poll_once()
    assert os.stat(state).st_ino == inode
