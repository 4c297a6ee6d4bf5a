"""Operator commands that are never silently blind (docs/operations.md has the whole matrix).

``quarantine tail --follow`` started before its topic exists, while partitions are added,
and across a restart of a broker of this module alone (the session broker is never
stopped here); and every cell of the matrix that ends in an error: exit status 1, the
message's first line, and nothing after the message on stderr (no traceback, no
leaked-client warning). Commands run as `python -m streams` subprocesses, as a person
would run them.
"""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import NewPartitions

from streams.broker import kafka_io
from streams.broker.localkafka.broker import LocalKafka
from streams.broker.topics import QUARANTINE
from streams.settings import DistillSettings
from tests.humaneval import HUMANEVAL_GZ as HUMANEVAL
from tests.integration.conftest import SAMPLE_DATA, ingest, running_worker, settle_and_export

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("Traceback", "Unclosed AIOKafka", "Task was destroyed", "Exception ignored", "Unable connect")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def env_of(settings: DistillSettings, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILL_")}
    return env | {
        "DISTILL_BOOTSTRAP": settings.bootstrap, "DISTILL_TOPIC_PREFIX": settings.topic_prefix,
        "DISTILL_DATA_DIR": str(settings.data_dir), "DISTILL_WEB_ENABLED": "false", **more,
    }


def distill(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


class Tail:
    """A `distill quarantine tail --follow --json` subprocess; its stdout and stderr in files."""

    def __init__(self, env: dict, folder: Path, *flags: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.out, self.err = folder / "tail.out", folder / "tail.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "quarantine", "tail", "--follow", "--json", *flags],
                env=env, cwd=ROOT, stdout=out, stderr=err,
            )

    def records(self) -> list[dict]:
        return [orjson.loads(line) for line in self.out.read_bytes().splitlines() if line.strip()]

    def stderr(self) -> str:
        return self.err.read_text()

    async def until(self, what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"the tail exited ({self.process.returncode}): {self.stderr()}"
            assert time.monotonic() < deadline, f"{what}: not within {timeout} s; stderr:\n{self.stderr()}"
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)  # Ctrl-C
            self.process.wait(30)
        assert self.process.returncode == 0, self.stderr()
        assert not [n for n in NOISE if n in self.stderr()], self.stderr()


def record(seq: int, partition: int) -> bytes:
    return orjson.dumps({"stage": "sft", "reason": "unsafe_sft_category", "run_id": f"r-{partition}-{seq}",
                         "seq": seq, "partition": partition, "errors": ["test"],
                         "source": {"topic": "t", "partition": partition, "offset": seq}})


async def produce(settings: DistillSettings, partitions: list[int], seqs: range) -> None:
    async with kafka_io.started(kafka_io.producer(settings)) as producer:
        name = settings.topic("quarantine")
        headers = [("stage", b"sft"), ("reason", b"unsafe_sft_category")]
        for seq in seqs:
            for p in partitions:
                await producer.send(name, record(seq, p), key=f"q-{p}-{seq}".encode(), partition=p, headers=headers)
        await producer.flush()


def shown_once_in_order(records: list[dict]) -> dict[int, list[int]]:
    by_partition: dict[int, list[int]] = {}
    for r in records:
        by_partition.setdefault(r["partition"], []).append(r["seq"])
    return by_partition


# ------------------------------------------------------------------ the tail, never blind


async def test_tail_started_before_any_worker_shows_the_records_the_worker_writes(make_settings, tmp_path):
    """The issue's session: tail first, then worker and ingest of the sample data."""
    settings = make_settings(pair_idle_close=2.0)
    tail = Tail(env_of(settings), tmp_path, "--reason", "unsafe_sft_category")
    try:
        await tail.until("the waiting line", lambda: "waiting for topic" in tail.stderr())
        await ingest(settings, [SAMPLE_DATA / "evidence.jsonl"], [SAMPLE_DATA / "scores.jsonl"])
        async with running_worker(settings):
            rows = await settle_and_export(settings)
        want = {r["id"] for r in rows["quarantine"] if r["reason"] == "unsafe_sft_category"}
        assert want
        await tail.until("every unsafe_sft_category record", lambda: len(tail.records()) >= len(want))
    finally:
        tail.stop()
    shown = [r["id"] for r in tail.records()]
    assert sorted(shown) == sorted(want)  # each once
    assert tail.stderr().count("waiting for topic") == 1


async def test_tail_takes_up_partitions_added_while_it_follows(make_settings, tmp_path):
    settings = make_settings()
    await kafka_io.ensure_topics(settings, [QUARANTINE])
    tail = Tail(env_of(settings), tmp_path)
    try:
        await tail.until("the following line", lambda: "following topic" in tail.stderr())
        await produce(settings, [0, 1], range(3))
        await tail.until("the first records", lambda: len(tail.records()) == 6)
        async with kafka_io.started(kafka_io.admin(settings)) as admin:
            await admin.create_partitions({settings.topic("quarantine"): NewPartitions(total_count=4)})
        await produce(settings, [2, 3], range(3))  # at once, before the tail can have seen them
        await produce(settings, [0, 1], range(3, 5))
        await tail.until("the records of the new partitions", lambda: len(tail.records()) == 16)
    finally:
        tail.stop()
    assert shown_once_in_order(tail.records()) == {0: [0, 1, 2, 3, 4], 1: [0, 1, 2, 3, 4], 2: [0, 1, 2], 3: [0, 1, 2]}


@pytest.fixture(scope="module")
def own_broker(broker, tmp_path_factory) -> Iterator[LocalKafka]:
    """A broker of this module alone, to stop and start again; its jars are the session broker's."""
    home = tmp_path_factory.mktemp("restart-kafka")
    session = LocalKafka.from_env()
    if session.lib_dir.is_dir():
        (home / "lib").symlink_to(session.lib_dir, target_is_directory=True)
    kafka = LocalKafka(home, free_port(), free_port())
    try:
        kafka.up(timeout=180)
        yield kafka
    finally:
        kafka.down()


async def test_tail_carries_on_across_a_broker_restart_showing_each_record_once(own_broker, make_settings, tmp_path):
    settings = make_settings(bootstrap=own_broker.bootstrap)
    await kafka_io.ensure_topics(settings, [QUARANTINE])
    await produce(settings, [0, 1], range(20))
    tail = Tail(env_of(settings), tmp_path, "--from-beginning")
    try:
        await tail.until("the records before the restart", lambda: len(tail.records()) == 40)
        await asyncio.to_thread(own_broker.down)
        await tail.until("the lost-broker line", lambda: "lost the broker" in tail.stderr())
        await asyncio.to_thread(own_broker.up, 180)
        await produce(settings, [0, 1], range(20, 50))
        await tail.until("the records after the restart", lambda: len(tail.records()) >= 100, timeout=120)
        await asyncio.sleep(2)  # would a duplicate still come?
    finally:
        tail.stop()
    assert shown_once_in_order(tail.records()) == {0: list(range(50)), 1: list(range(50))}
    assert "answers again" in tail.stderr()


# ------------------------------------------------------------------ the cells that end in an error


def assert_one_message(result: subprocess.CompletedProcess, first_line: str, last_line: str = "Operator action:") -> None:
    """Exit 1; the stderr ends with the message, whose first line starts as given and
    whose last line is what to do; nothing after it (no traceback, no leaked client)."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.rstrip("\n").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(starts) == 1, result.stderr
    assert lines[starts[0]].startswith(first_line), result.stderr
    assert lines[-1].startswith(last_line), result.stderr
    assert not [n for n in NOISE if n in result.stderr], result.stderr


COMMANDS = {
    "ingest": ["ingest", "--evidence", str(SAMPLE_DATA / "evidence.jsonl")],
    "ingest --follow": ["ingest", "--follow", "--evidence", str(SAMPLE_DATA / "evidence.jsonl")],
    "manifest publish": ["manifest", "publish", str(SAMPLE_DATA / "manifest.txt")],
    "wait": ["wait", "--timeout", "30"],
    "export": ["export", "--out", "EXPORT"],
    "stats": ["stats"],
    "quarantine tail": ["quarantine", "tail", "--from-beginning"],
    "quarantine tail --follow": ["quarantine", "tail", "--follow"],
    "replay": ["replay", "--timeout", "30"],
    "worker": ["worker"],
    "evalset add": ["evalset", "add", "humaneval", str(HUMANEVAL)],
    "evalset list": ["evalset", "list"],
    "evalset remove": ["evalset", "remove", "humaneval"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unreachable_broker_ends_each_command_at_once_with_one_message(command, tmp_path):
    port = free_port()  # closed: nothing listens there
    settings = DistillSettings(bootstrap=f"127.0.0.1:{port}", topic_prefix="unreachable.", data_dir=tmp_path)
    args = [str(tmp_path / "out") if a == "EXPORT" else a for a in COMMANDS[command]]
    started = time.monotonic()
    result = distill(env_of(settings), *args)
    assert time.monotonic() - started < 15
    assert_one_message(result, f"error: cannot reach Kafka at 127.0.0.1:{port}")


def test_demo_with_an_unreachable_bootstrap_ends_with_one_message(own_broker, tmp_path):
    # DISTILL_KAFKA_* name a running broker of this module: the demo neither starts nor stops one.
    settings = DistillSettings(bootstrap=f"127.0.0.1:{free_port()}", data_dir=tmp_path)
    env = env_of(settings, DISTILL_KAFKA_HOME=str(own_broker.home), DISTILL_KAFKA_PORT=str(own_broker.port),
                 DISTILL_KAFKA_CONTROLLER_PORT=str(own_broker.controller_port))
    result = distill(env, "--topic-prefix", "unreachable-demo.", "demo", "--out", str(tmp_path / "out"))
    assert_one_message(result, "error: cannot reach Kafka at 127.0.0.1:")
    assert own_broker.status()["running"]


@pytest.mark.parametrize("command, first_line", [
    ("stats", "error: no 10 topics"),
    ("evalset list", "error: no topic it."),
    ("export", "error: no 4 topics"),
    ("quarantine tail", "error: topic it."),
    ("replay", "error: no 2 topics"),
])
def test_a_prefix_nothing_has_run_with_ends_the_reading_commands_with_one_message(command, first_line, make_settings):
    settings = make_settings()
    args = [str(settings.data_dir / "out") if a == "EXPORT" else a for a in COMMANDS[command]]
    result = distill(env_of(settings), *args)
    assert_one_message(result, first_line)
    assert not (settings.data_dir / "out").exists()
    assert "Operator action: check DISTILL_TOPIC_PREFIX" in result.stderr


def test_wait_says_it_waits_for_the_topics_and_honours_its_timeout(make_settings):
    settings = make_settings()
    started = time.monotonic()
    result = distill(env_of(settings), "wait", "--timeout", "3")
    assert time.monotonic() - started < 20
    assert result.stderr.startswith(f"waiting for the topics {settings.topic('evidence')}")
    assert_one_message(result, f"error: the topics {settings.topic('evidence')}")


@pytest.mark.slow
async def test_wait_rides_out_a_broker_restart_then_honours_its_timeout(own_broker, make_settings, tmp_path):
    """No worker runs: the wait waits for one, says so, outlives the restart, and gives up at --timeout."""
    settings = make_settings(bootstrap=own_broker.bootstrap)
    await ingest(settings, [SAMPLE_DATA / "evidence.jsonl"])
    err = tmp_path / "wait.err"
    with err.open("wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "streams", "wait", "--timeout", "40"], env=env_of(settings),
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=handle)
    try:
        deadline = time.monotonic() + 30
        while "no worker of group" not in err.read_text():
            assert process.poll() is None and time.monotonic() < deadline, err.read_text()
            await asyncio.sleep(0.1)
        await asyncio.to_thread(own_broker.down)
        await asyncio.to_thread(own_broker.up, 180)
        await asyncio.to_thread(process.wait, 120)
    finally:
        if process.poll() is None:
            process.kill()
    result = subprocess.CompletedProcess(process.args, process.returncode, "", err.read_text())
    assert "lost the broker" in result.stderr and "answers again" in result.stderr
    assert_one_message(result, "error: input topics consumed: not done")


async def test_the_partitions_of_a_topic_are_found_without_creating_it(make_settings):
    """The broker auto-creates topics a metadata request names: looking must never do that."""
    settings = make_settings()
    async with kafka_io.started(kafka_io.admin(settings)) as admin:
        assert await kafka_io.partition_count(admin, settings.topic("quarantine")) is None
    assert await kafka_io.missing_topics(settings, [settings.topic("quarantine")]) == [settings.topic("quarantine")]
    assert await kafka_io.end_offsets(settings, [settings.topic("quarantine")]) == {}
    assert await kafka_io.missing_topics(settings, [settings.topic("quarantine")]) == [settings.topic("quarantine")]
