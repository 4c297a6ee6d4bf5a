"""`distill evalset add|list|remove` on the real broker, and the worker's view following them."""

import asyncio
import gzip
import time
from contextlib import asynccontextmanager, suppress

import orjson
import pytest
from aiokafka.admin import NewTopic
from click.testing import CliRunner

from streams.broker import kafka_io
from streams.cli import main
from streams.commands.evalset import Published, SetSummary, add_eval_set, list_eval_sets, remove_eval_set
from streams.commands.evalset_files import EvalSet, read_eval_set
from streams.errors import EvalSetError
from streams.faust_app.evalsets import EvalSetView
from streams.rules.decontamination import EvalIndex, EvalItem
from streams.settings import DistillSettings
from tests.humaneval import FIELDS, HUMANEVAL_GZ, humaneval_tasks

pytestmark = pytest.mark.integration


async def topic_state(settings: DistillSettings) -> tuple[int, dict[bytes, bytes]]:
    """The eval-sets topic's end offset and live values."""
    name = settings.topic("eval-sets")
    ends = await kafka_io.end_offsets(settings, [name])
    live, _ = await kafka_io.latest_values(settings, name)
    return sum(ends.values()), live


async def until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def following(settings: DistillSettings):
    """A view following the topic, and the sets of each index it reported a change for."""
    changes: list[dict[str, int]] = []
    view = EvalSetView(settings, on_change=lambda: changes.append(dict(view.index.sets)))
    task = asyncio.create_task(view.follow())
    try:
        await asyncio.wait_for(view.ready.wait(), 30)
        yield view, changes
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def test_add_replace_and_remove_humaneval_while_a_view_follows(make_settings, tmp_path):
    settings = make_settings()
    async with following(settings) as (view, changes):
        assert view.version == "" and view.index.sets == {}

        full = read_eval_set("humaneval", [HUMANEVAL_GZ], list(FIELDS), "task_id")
        assert await add_eval_set(settings, full) == Published(
            "humaneval", 164, 0, ["canonical_solution", "prompt"], len(EvalIndex.build(full.items)))
        assert await list_eval_sets(settings) == [SetSummary("humaneval", 164, ["canonical_solution", "prompt"])]
        await until(lambda: view.version == EvalIndex.build(full.items).version)
        assert view.index.match(humaneval_tasks()[150]["canonical_solution"]).item_id == "HumanEval/150"

        smaller_file = tmp_path / "humaneval-100.jsonl"
        with gzip.open(HUMANEVAL_GZ, "rb") as lines:
            smaller_file.write_bytes(b"".join(list(lines)[:100]))
        smaller = read_eval_set("humaneval", [smaller_file], list(FIELDS), "task_id")
        assert (await add_eval_set(settings, smaller)).retracted == 64
        [summary] = await list_eval_sets(settings, sequences=True)
        assert (summary.items, summary.sequences) == (100, len(EvalIndex.build(smaller.items)))
        _, live = await topic_state(settings)
        assert set(live) == {f"humaneval/HumanEval/{i}".encode() for i in range(100)}
        await until(lambda: view.version == EvalIndex.build(smaller.items).version)
        assert view.index.match(humaneval_tasks()[150]["canonical_solution"]) is None

        assert await remove_eval_set(settings, "humaneval") == 100
        assert await list_eval_sets(settings) == []
        assert (await topic_state(settings))[1] == {}
        await until(lambda: view.version == "")
        # Each command's transaction was seen whole: no index of a part of a set.
        assert changes == [{"humaneval": 164}, {"humaneval": 100}, {}]


async def test_sets_live_side_by_side_and_removing_one_leaves_the_other(make_settings, tmp_path):
    settings = make_settings()
    (tmp_path / "qa.jsonl").write_bytes(b'{"q": "how many legs has a spider, counting all of them twice?"}\n')
    await add_eval_set(settings, read_eval_set("qa", [tmp_path / "qa.jsonl"]))
    await add_eval_set(settings, read_eval_set("qa2", [tmp_path / "qa.jsonl"]))
    assert [s.name for s in await list_eval_sets(settings)] == ["qa", "qa2"]
    assert await remove_eval_set(settings, "qa") == 1
    assert await list_eval_sets(settings) == [SetSummary("qa2", 1, ["q"])]
    with pytest.raises(EvalSetError, match=r"no evaluation set 'qa' on .* \(sets: qa2\)"):
        await remove_eval_set(settings, "qa")


async def test_an_item_past_one_mib_is_published_and_read(make_settings, tmp_path):
    settings = make_settings()
    words = " ".join(f"w{i}" for i in range(400_000))  # ~2.8 MB
    (tmp_path / "big.jsonl").write_bytes(orjson.dumps({"patch": words}) + b"\n")
    await add_eval_set(settings, read_eval_set("big", [tmp_path / "big.jsonl"]))
    async with following(settings) as (view, _):
        assert view.index.sets == {"big": 1}
        assert view.index.match(" ".join(f"w{i}" for i in range(300_000, 300_013))).item_id == "0"


async def test_an_item_too_large_for_the_topic_is_refused_before_anything_is_published(make_settings):
    settings = make_settings()
    await kafka_io.ensure_topics(settings)
    before = await topic_state(settings)
    huge = EvalSet("huge", [EvalItem("huge", "0", {"text": "x " * (9 * 1024 * 1024)})], [])
    with pytest.raises(EvalSetError, match=r"item '0': 18,874,\d{3} bytes on the topic, more than the 16,776,192 "
                                           r"a message of .* may have \(its max.message.bytes is 16,777,216\)"):
        await add_eval_set(settings, huge)
    assert await topic_state(settings) == before


async def test_a_topic_made_with_the_brokers_1_mib_limit_refuses_a_larger_item_and_says_how_to_raise_it(make_settings):
    settings = make_settings()
    name = settings.topic("eval-sets")
    async with kafka_io.started(kafka_io.admin(settings)) as admin:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs={"cleanup.policy": "compact"})])
    before = await topic_state(settings)
    big = EvalSet("big", [EvalItem("big", "0", {"text": "x " * (1024 * 1024)})], [])
    with pytest.raises(EvalSetError) as refused:
        await add_eval_set(settings, big)
    assert f"--entity-name {name} --add-config max.message.bytes=16777216" in str(refused.value)
    assert await topic_state(settings) == before


BAD_INPUTS = {
    "missing file": (["add", "bad", "MISSING.jsonl"], "MISSING.jsonl: no such file or folder"),
    "unparseable line": (["add", "bad", "broken.jsonl"], "broken.jsonl:2: not valid UTF-8 JSON"),
    "unreadable gzip": (["add", "bad", "truncated.jsonl.gz"], "truncated.jsonl.gz:"),
    "unknown field": (["add", "bad", "good.jsonl", "--field", "solution"], "no item has a string field 'solution'"),
    "empty set": (["add", "bad", "empty.jsonl"], "evaluation set 'bad': no items in"),
    "nothing to index": (["add", "bad", "numbers.jsonl"], "has a string field to index"),
    "repeated ids": (["add", "bad", "good.jsonl", "--id-field", "group"], "good.jsonl:2: id 'g' (field 'group') repeats"),
    "missing id field": (["add", "bad", "good.jsonl", "--id-field", "task_id"], "good.jsonl:1: the id field 'task_id'"),
    "bad name": (["add", "bad/name", "good.jsonl"], "evaluation set name 'bad/name'"),
    "empty name": (["add", "", "good.jsonl"], "evaluation set name ''"),
    "remove unknown": (["remove", "nope"], "no evaluation set 'nope'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_message_and_publishes_nothing(make_settings, tmp_path, case):
    settings = make_settings()
    (tmp_path / "good.jsonl").write_bytes(b'{"q": "first question", "group": "g"}\n{"q": "second", "group": "g"}\n')
    (tmp_path / "broken.jsonl").write_bytes(b'{"q": "first"}\n{"q": \n')
    (tmp_path / "truncated.jsonl.gz").write_bytes(gzip.compress(b'{"q": "x"}\n' * 1000)[:-40])
    (tmp_path / "empty.jsonl").write_bytes(b"\n\n")
    (tmp_path / "numbers.jsonl").write_bytes(b'{"n": 1}\n')
    args, message = BAD_INPUTS[case]
    runner = CliRunner()
    prefix = ["--bootstrap", settings.bootstrap, "--topic-prefix", settings.topic_prefix, "evalset"]
    assert runner.invoke(main, [*prefix, "add", "bad", str(tmp_path / "good.jsonl")]).exit_code == 0
    before = asyncio.run(topic_state(settings))
    result = runner.invoke(main, [*prefix, *[str(tmp_path / a) if "." in a else a for a in args]])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert "Operator action:" in result.stderr and "Traceback" not in result.stderr
    assert asyncio.run(topic_state(settings)) == before
