"""``distill ingest --follow`` on the real broker: the sample written task by task into growing
files, the follower stopped (SIGTERM), killed (SIGKILL) and restarted, files rotated; every
line reaches its topic exactly once, and the datasets equal those of a one-shot ingest."""

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from schemas import ScoredRun
from schemas.codec import Undecodable, decode_input
from streams.broker import kafka_io
from streams.commands.ingest import publish_files
from streams.commands.manifest_publish import manifest_paths, publish_manifest
from streams.commands.worker import settings_env
from tests.integration.conftest import SAMPLE_DATA, running_worker, settle_and_export

pytestmark = pytest.mark.integration
MAX_BYTES = 900_000


def sample_by_window() -> list[tuple[list[bytes], list[bytes]]]:
    """The sample's (evidence lines, score lines) per pair window (task, UTC day of the score),
    in file order within a window, windows by day then first appearance: written in this
    order, no run reaches its window after it closed. A line that names no window goes with
    the line before it."""
    days = {}
    for line in (SAMPLE_DATA / "scores.jsonl").read_bytes().splitlines():
        record = decode_input(ScoredRun, line, MAX_BYTES)
        if not isinstance(record, Undecodable):
            days.setdefault(record.evidence_run_id, record.scored_at[:10])
    groups: dict[tuple[str, str], tuple[list[bytes], list[bytes]]] = {}
    for index, (name, run_field, task_field) in enumerate(
        [("evidence.jsonl", "run_id", "task_id"), ("scores.jsonl", "evidence_run_id", "evidence_task_id")]
    ):
        window = ("", "")
        for line in (SAMPLE_DATA / name).read_bytes().splitlines(keepends=True):
            run_id, task = _field_of(line, run_field), _field_of(line, task_field)
            window = (days.get(run_id, ""), task) if task else window
            groups.setdefault(window, ([], []))[index].append(line)
    return [groups[w] for w in sorted(groups, key=lambda w: w[0])]  # sorted() is stable


def _field_of(line: bytes, name: str) -> str | None:
    """A string field of a line, valid or not (an invalid line may still name its task)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    value = obj.get(name) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


class Inputs:
    """The followed folders, and every line written to them, by topic."""

    def __init__(self, root: Path) -> None:
        self.evidence, self.scores = root / "evidence", root / "scores"
        self.evidence.mkdir(parents=True)
        self.scores.mkdir(parents=True)
        self.written: dict[str, list[bytes]] = {"evidence": [], "scored-runs": []}
        self.partial: dict[Path, bytes] = {}

    def evidence_of(self, windows, name: str) -> None:
        self._append(self.evidence / name, b"".join(line for w in windows for line in w[0]), "evidence")

    def scores_of(self, windows, name: str, hold_back: int = 0) -> bytes:
        """Append the windows' scores but the last ``hold_back`` bytes (returned, for
        ``finish``: until then the file ends in a line without its newline)."""
        scores = b"".join(line for w in windows for line in w[1])
        self._append(self.scores / name, scores[:len(scores) - hold_back], "scored-runs")
        return scores[len(scores) - hold_back:]

    def finish(self, name: str, rest: bytes) -> None:
        self._append(self.scores / name, rest, "scored-runs")

    def _append(self, path: Path, data: bytes, topic: str) -> None:
        with path.open("ab") as handle:
            handle.write(data)
        *complete, self.partial[path] = (self.partial.get(path, b"") + data).split(b"\n")
        self.written[topic] += [line.rstrip(b"\r") for line in complete if line.strip()]

    def expected(self, topic: str) -> int:
        return len(self.written[topic])


class Follower:
    """``distill ingest --follow --json`` as a child process, as a person would run it."""

    started: list[subprocess.Popen] = []

    def __init__(self, settings, inputs: Inputs, name: str) -> None:
        log = settings.data_dir / f"follow-{name}"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.out, self.err = log.with_suffix(".out"), log.with_suffix(".err")
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "ingest", "--follow", "--json", "--poll-interval", "0.2",
                 "--evidence", str(inputs.evidence), "--scores", str(inputs.scores)],
                env=settings_env(settings), stdout=out, stderr=err,
            )
        Follower.started.append(self.process)

    async def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, 60)
        assert code == 0, self.err.read_text()[-3000:]
        return orjson.loads(self.out.read_bytes())

    async def kill(self) -> None:
        self.process.kill()
        await asyncio.to_thread(self.process.wait, 60)

    def check_alive(self) -> None:
        assert self.process.poll() is None, f"the follower exited: {self.err.read_text()[-3000:]}"


@pytest.fixture(autouse=True)
def no_follower_left():
    yield
    for process in Follower.started:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    Follower.started.clear()


async def published(settings, topic: str) -> int:
    """Messages in an input topic (no transactions write to them: end offset = count)."""
    return sum((await kafka_io.end_offsets(settings, [settings.topic(topic)])).values())


async def caught_up(settings, inputs: Inputs, follower: Follower | None = None, timeout: float = 60) -> None:
    """Poll until each input topic holds at least what was written (more fails later)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = {t: await published(settings, t) for t in inputs.written}
        if all(counts[t] >= inputs.expected(t) for t in counts):
            return
        if follower:
            follower.check_alive()
        assert time.monotonic() < deadline, f"published {counts}, written {[inputs.expected(t) for t in counts]}"
        await asyncio.sleep(0.1)


async def topic_values(settings, topic: str) -> list[bytes]:
    return [m.value async for m in kafka_io.read_topic(settings, settings.topic(topic))]


async def worker_consumed(settings, topic: str, timeout: float = 60) -> None:
    """Poll until the worker has committed every message of an input topic."""
    deadline = time.monotonic() + timeout
    while True:
        ends = await kafka_io.end_offsets(settings, [settings.topic(topic)])
        committed = await kafka_io.committed_offsets(settings, settings.application_id, list(ends))
        if all(committed.get(tp, 0) >= end for tp, end in ends.items()):
            return
        assert time.monotonic() < deadline, f"the worker did not consume {topic}: {committed} of {ends}"
        await asyncio.sleep(0.2)


async def evidence_first(settings, inputs: Inputs, follower: "Follower", windows, name: str) -> None:
    """Evidence is recorded minutes before its score: publish it and let the worker take it
    first. (Written at the same moment, the worker could take the scores topic first; the
    join then waits, and a window may close before its run joins: not what this test is about.)"""
    inputs.evidence_of(windows, name)
    await caught_up(settings, inputs, follower)
    await worker_consumed(settings, "evidence")


async def test_follow_publishes_each_line_once_across_stops_kills_and_rotation(make_settings, tmp_path):
    # Idle windows close after 10 s, longer than a restart: a window cut by a kill is not closed early.
    settings, reference = make_settings(pair_idle_close=10.0), make_settings(pair_idle_close=10.0)
    windows = sample_by_window()
    inputs = Inputs(tmp_path / "incoming")
    for s in (settings, reference):
        await kafka_io.ensure_topics(s)
        await publish_manifest(s, manifest_paths(SAMPLE_DATA / "manifest.txt"))
    await publish_files(reference, {"evidence": [SAMPLE_DATA / "evidence.jsonl"], "scored-runs": [SAMPLE_DATA / "scores.jsonl"]})

    async with running_worker(settings), running_worker(reference):
        # 1. Lines appear while a follower runs; a last line waits for its newline. SIGTERM.
        first = Follower(settings, inputs, "1")
        await evidence_first(settings, inputs, first, windows[:80], "a.jsonl")
        inputs.scores_of(windows[:20], "a.jsonl")
        rest = inputs.scores_of(windows[20:40], "a.jsonl", hold_back=25)
        await caught_up(settings, inputs, first)
        inputs.finish("a.jsonl", rest)
        await caught_up(settings, inputs, first)
        summary = await first.stop()
        assert summary["published"] == {t: inputs.expected(t) for t in inputs.written}
        assert summary["recovered"] == 0

        # 2. Written while no follower runs: more lines, and a new file in a followed folder.
        inputs.scores_of(windows[40:60], "a.jsonl")
        inputs.scores_of(windows[60:80], "b.jsonl")

        # 3. A follower killed (SIGKILL) while lines keep coming; restarted.
        second = Follower(settings, inputs, "2")
        await evidence_first(settings, inputs, second, windows[80:170], "b.jsonl")
        before = inputs.expected("scored-runs")
        writer = asyncio.create_task(write_slowly(inputs, windows[80:150], "b.jsonl"))
        while await published(settings, "scored-runs") < before + 60:
            second.check_alive()
            await asyncio.sleep(0.05)
        await second.kill()
        await writer
        third = Follower(settings, inputs, "3")
        await caught_up(settings, inputs, third)

        # 4. Killed (SIGKILL) right after a batch is acknowledged; more lines while it is down.
        inputs.scores_of(windows[150:160], "b.jsonl")
        await caught_up(settings, inputs, third)
        await third.kill()
        inputs.scores_of(windows[160:170], "b.jsonl")

        # 5. Rotation while following: evidence renamed inside the followed folder (keeps its
        #    place), scores renamed out of it (drained), each right after lines were appended.
        fourth = Follower(settings, inputs, "4")
        await caught_up(settings, inputs, fourth)
        inputs.evidence_of(windows[170:185], "b.jsonl")
        (inputs.evidence / "old").mkdir()
        (inputs.evidence / "b.jsonl").rename(inputs.evidence / "old" / "b-rotated.jsonl")
        await evidence_first(settings, inputs, fourth, windows[185:], "b.jsonl")
        inputs.scores_of(windows[170:185], "b.jsonl")
        (inputs.scores / "b.jsonl").rename(inputs.scores / "b.jsonl.1")
        inputs.scores_of(windows[185:], "b.jsonl")
        await caught_up(settings, inputs, fourth)
        summary = await fourth.stop()
        assert summary["published"]["scored-runs"] > 0

        for topic in inputs.written:
            assert Counter(await topic_values(settings, topic)) == Counter(inputs.written[topic]), topic
        for topic, name in (("evidence", "evidence.jsonl"), ("scored-runs", "scores.jsonl")):
            assert Counter(inputs.written[topic]) == Counter((SAMPLE_DATA / name).read_bytes().splitlines())

        followed, expected = await settle_and_export(settings), await settle_and_export(reference)

    for kind in ("rag", "sft", "preference"):
        assert followed[kind] == expected[kind], kind
    assert followed["preference"], "the sample has pairs"

    def outcomes(rows):
        return Counter((r["stage"], r["reason"], r.get("run_id")) for r in rows)

    assert outcomes(followed["quarantine"]) == outcomes(expected["quarantine"])


async def write_slowly(inputs: Inputs, windows, name: str) -> None:
    for window in windows:
        inputs.scores_of([window], name)
        await asyncio.sleep(0.02)
