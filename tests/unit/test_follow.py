"""Following growing JSONL files without a broker: the follower publishes through a fake
``send`` that keeps an in-memory log, and a restart is a new follower over the same state file."""

import asyncio
import os
from collections import namedtuple
from pathlib import Path

import orjson
import pytest

from streams.errors import DistillError
from streams.follow import Follower, OffsetStore, locked_store, offsets_file, published_marks
from streams.ingest import key_for, lines_of
from streams.settings import DistillSettings

Acked = namedtuple("Acked", "topic partition offset")


class FakeLog:
    """One partition per topic; ``send`` queues, the ack resolves at once (or never, or fails)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bytes, list]] = []
        self.ack = "ok"

    async def send(self, topic, key, value, headers):
        future = asyncio.get_running_loop().create_future()
        if self.ack == "fail":
            future.set_exception(ConnectionError("broker went away"))
            return future
        self.messages.append((topic, key, value, headers))
        future.set_result(Acked(topic, 0, len(self.messages) - 1))
        return future

    def values(self, topic=None) -> list[bytes]:
        return [v for t, _, v, _ in self.messages if topic in (None, t)]

    def headers_since(self, positions: dict[str, int]) -> list[list]:
        return [h for i, (t, _, _, h) in enumerate(self.messages) if i >= positions.get(f"{t}:0", 0)]


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


def follower(state: Path, log: FakeLog, *, evidence=(), scores=(), clock=None, **options) -> Follower:
    sources = {"evidence": list(evidence), "scored-runs": list(scores)}
    return Follower(sources, OffsetStore.load(state), log.send, clock=clock or Clock(), **options)


async def test_publishes_complete_lines_only_and_waits_for_the_rest(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("r1") + b'{"run_id": "r2", "n"')
    log = FakeLog()
    f = follower(state, log, evidence=[path])
    await f.poll_once()
    assert log.values() == [row("r1").rstrip()]
    await f.poll_once()
    assert len(log.messages) == 1
    append(path, b": 2}\n\n" + row("r3"))
    await f.poll_once()
    assert log.values() == [row("r1").rstrip(), b'{"run_id": "r2", "n": 2}', row("r3").rstrip()]
    assert [k for _, k, _, _ in log.messages] == [b"r1", b"r2", b"r3"]
    assert f.published == {"evidence": 3, "scored-runs": 0}


async def test_keys_and_values_are_those_of_one_shot_ingest(tmp_path, state):
    scores = tmp_path / "s.jsonl"
    scores.write_bytes(orjson.dumps({"evidence_run_id": "r9"}) + b"\nnot json\n\n" + orjson.dumps({"run_id": "x"}) + b"\n")
    log = FakeLog()
    await follower(state, log, scores=[scores]).poll_once()
    one_shot = [(key_for(line, "evidence_run_id", f"s.jsonl:{n}"), line) for n, line in lines_of(scores)]
    assert [(k, v) for _, k, v, _ in log.messages] == one_shot
    assert [k for k, _ in one_shot] == [b"r9", b"unkeyed:s.jsonl:2", b"unkeyed:s.jsonl:4"]
    assert {t for t, *_ in log.messages} == {"scored-runs"}


async def test_evidence_goes_out_before_scores_in_a_batch(tmp_path, state):
    (tmp_path / "e.jsonl").write_bytes(row("r1"))
    (tmp_path / "s.jsonl").write_bytes(orjson.dumps({"evidence_run_id": "r1"}) + b"\n")
    log = FakeLog()
    await follower(state, log, scores=[tmp_path / "s.jsonl"], evidence=[tmp_path / "e.jsonl"]).poll_once()
    assert [t for t, *_ in log.messages] == ["evidence", "scored-runs"]


async def test_new_files_in_a_followed_folder_are_picked_up(tmp_path, state):
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(row("a"))
    log = FakeLog()
    f = follower(state, log, evidence=[folder])
    await f.poll_once()
    (folder / "nested").mkdir()
    (folder / "nested" / "b.jsonl").write_bytes(row("b"))
    (folder / "notes.txt").write_bytes(row("ignored"))
    append(folder / "a.jsonl", row("a", 1))
    await f.poll_once()
    assert sorted(log.values()) == sorted([row("a").rstrip(), row("a", 1).rstrip(), row("b").rstrip()])


async def test_a_file_renamed_away_is_drained_and_the_new_one_read_from_its_start(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("old", 1))
    log, clock = FakeLog(), Clock()
    f = follower(state, log, evidence=[path], clock=clock, settle=2.0)
    await f.poll_once()
    append(path, row("old", 2) + b'{"run_id": "old", "n": 3')  # written just before the rotation
    path.rename(tmp_path / "e.jsonl.1")
    path.write_bytes(row("new", 1))
    await f.poll_once()
    assert log.values() == [row("old", 1).rstrip(), row("old", 2).rstrip(), row("new", 1).rstrip()]
    append(tmp_path / "e.jsonl.1", b"}\n")  # the writer finishes its line in the old file
    clock.now += 0.5
    await f.poll_once()
    assert log.values()[-1] == b'{"run_id": "old", "n": 3}'
    clock.now += 5
    await f.poll_once()
    assert len(f.files) == 1 and len(OffsetStore.load(state).cursors) == 1
    assert len(log.messages) == 4


async def test_a_rotated_file_left_without_a_last_newline_is_published_once_quiet(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("old", 1) + b'{"run_id": "old", "n": 2}')
    log, clock = FakeLog(), Clock()
    f = follower(state, log, evidence=[path], clock=clock, settle=2.0)
    await f.poll_once()
    path.rename(tmp_path / "e.jsonl.1")
    await f.poll_once()
    assert len(log.messages) == 1
    clock.now += 3
    await f.poll_once()
    assert log.values() == [row("old", 1).rstrip(), b'{"run_id": "old", "n": 2}']
    assert f.files == {}


async def test_a_rename_inside_a_followed_folder_keeps_its_place(tmp_path, state):
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "today.jsonl").write_bytes(row("a", 1))
    log = FakeLog()
    f = follower(state, log, evidence=[folder])
    await f.poll_once()
    (folder / "today.jsonl").rename(folder / "yesterday.jsonl")
    append(folder / "yesterday.jsonl", row("a", 2))
    await f.poll_once()
    assert log.values() == [row("a", 1).rstrip(), row("a", 2).rstrip()]


async def test_truncation_and_rewrite_start_the_file_over(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1) + row("a", 2) + row("a", 3))
    log = FakeLog()
    f = follower(state, log, evidence=[path])
    await f.poll_once()
    with path.open("r+b") as handle:  # truncated in place, shorter than what was read
        handle.truncate(0)
        handle.write(row("b", 1))
    await f.poll_once()
    assert log.values()[3:] == [row("b", 1).rstrip()]
    with path.open("r+b") as handle:  # truncated and rewritten longer before the next look
        handle.truncate(0)
        handle.write(row("c", 1) + row("c", 2))
    await f.poll_once()
    assert log.values()[4:] == [row("c", 1).rstrip(), row("c", 2).rstrip()]


async def test_restart_resumes_without_repeating_or_skipping(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1) + b'{"run_id": "a", ')
    log = FakeLog()
    first = follower(state, log, evidence=[path])
    await first.poll_once()
    first.close()
    append(path, b'"n": 2}\n' + row("a", 3))
    second = follower(state, log, evidence=[path])
    await second.poll_once()
    await second.poll_once()
    assert log.values() == [row("a", 1).rstrip(), b'{"run_id": "a", "n": 2}', row("a", 3).rstrip()]
    saved = orjson.loads(state.read_bytes())
    assert [c["offset"] for c in saved["files"].values()] == [path.stat().st_size]
    assert not list(state.parent.glob("*.tmp"))


async def test_a_file_rewritten_while_stopped_is_read_from_its_start(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    log = FakeLog()
    await follower(state, log, evidence=[path]).poll_once()
    path.write_bytes(row("b", 1) + row("b", 2))  # same inode, new content, longer
    await follower(state, log, evidence=[path]).poll_once()
    assert log.values() == [row("a", 1).rstrip(), row("b", 1).rstrip(), row("b", 2).rstrip()]


async def test_an_unacknowledged_batch_is_not_saved_and_goes_out_again(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    log = FakeLog()
    await follower(state, log, evidence=[path]).poll_once()
    append(path, row("a", 2))
    log.ack = "fail"
    with pytest.raises(ConnectionError):
        await follower(state, log, evidence=[path]).poll_once()
    log.ack = "ok"
    await follower(state, log, evidence=[path]).poll_once()
    assert log.values() == [row("a", 1).rstrip(), row("a", 2).rstrip()]


async def test_a_kill_between_ack_and_save_does_not_duplicate(tmp_path, state, monkeypatch):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    log = FakeLog()
    await follower(state, log, evidence=[path], follower_id="me").poll_once()
    append(path, row("a", 2) + row("a", 3))
    killed = follower(state, log, evidence=[path], follower_id="me")
    monkeypatch.setattr(OffsetStore, "save", lambda self: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        await killed.poll_once()  # acknowledged, never saved
    monkeypatch.undo()
    append(path, row("a", 4))
    store = OffsetStore.load(state)
    marks, count = published_marks("me", log.headers_since(store.positions))
    assert count == 2
    restarted = Follower({"evidence": [path]}, store, log.send, follower_id="me")
    restarted.resume(marks)
    await restarted.poll_once()
    assert log.values() == [row("a", n).rstrip() for n in (1, 2, 3, 4)]


async def test_marks_of_other_followers_are_ignored(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    log = FakeLog()
    await follower(state, log, evidence=[path], follower_id="other").poll_once()
    assert published_marks("me", log.headers_since({})) == ({}, 0)
    marks, count = published_marks("other", log.headers_since({}))
    assert count == 1 and list(marks.values()) == [(0, path.stat().st_size, 1)]


async def test_run_stops_on_the_event_and_saves(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    log, stop = FakeLog(), asyncio.Event()
    f = follower(state, log, evidence=[path], poll_interval=0.01)
    task = asyncio.create_task(f.run(stop))
    deadline = asyncio.get_running_loop().time() + 5
    while len(log.messages) < 1 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    append(path, row("a", 2))
    while len(log.messages) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [c.offset for c in OffsetStore.load(state).cursors.values()] == [path.stat().st_size]


def test_offsets_file_is_one_per_prefix_and_paths(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    settings = DistillSettings(data_dir=tmp_path / "data", topic_prefix="x.")
    one = offsets_file(settings, {"evidence": [a], "scored-runs": [b]})
    assert one.parent == tmp_path / "data" / "ingest-offsets" and one.suffix == ".json"
    assert one == offsets_file(settings, {"evidence": [a, a], "scored-runs": [tmp_path / "." / "b"]})
    assert one != offsets_file(settings, {"evidence": [b], "scored-runs": [a]})
    assert one != offsets_file(DistillSettings(data_dir=tmp_path / "data", topic_prefix="y."), {"evidence": [a], "scored-runs": [b]})


def test_one_follower_per_state_file(state):
    with locked_store(state):
        with pytest.raises(DistillError, match="already|another"):
            with locked_store(state):
                pass
    with locked_store(state) as store:
        assert store.cursors == {}


def test_an_unreadable_state_file_says_what_to_do(state):
    state.parent.mkdir(parents=True)
    state.write_bytes(b"{not json")
    with pytest.raises(DistillError, match="Operator action"):
        OffsetStore.load(state)


def test_the_state_file_is_replaced_atomically(state):
    store = OffsetStore(state, positions={"t:0": 3})
    store.save()
    inode = os.stat(state).st_ino
    store.positions["t:0"] = 4
    store.save()
    assert orjson.loads(state.read_bytes())["positions"] == {"t:0": 4}
    assert os.stat(state).st_ino != inode and not list(state.parent.glob(".*tmp"))


async def test_a_file_whose_device_number_changed_keeps_its_place(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    log = FakeLog()
    await follower(state, log, evidence=[path]).poll_once()
    saved = orjson.loads(state.read_bytes())  # as after a remount: same path, same bytes, other device
    saved["files"] = {f"evidence:999:{key.rsplit(':', 1)[1]}": c for key, c in saved["files"].items()}
    state.write_bytes(orjson.dumps(saved))
    append(path, row("a", 2))
    restarted = follower(state, log, evidence=[path])
    await restarted.poll_once()
    assert log.values() == [row("a", 1).rstrip(), row("a", 2).rstrip()]
    assert len(OffsetStore.load(state).cursors) == 1


def test_the_command_refuses_paths_that_do_not_exist(tmp_path):
    from click.testing import CliRunner

    from streams.cli import main

    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "ingest", "--follow", "--evidence", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
    result = CliRunner().invoke(main, ["ingest", "--follow"])
    assert result.exit_code == 2 and "nothing to ingest" in result.output


async def test_an_idle_follower_does_not_rewrite_its_state(tmp_path, state):
    path = tmp_path / "e.jsonl"
    path.write_bytes(row("a", 1))
    f = follower(state, FakeLog(), evidence=[path])
    await f.poll_once()
    inode = os.stat(state).st_ino
    await f.poll_once()
    assert os.stat(state).st_ino == inode
