"""`distill evalset add|list|remove` parse their arguments, call the commands and print what they
did (click's CliRunner; the commands' Kafka side is replaced here, tested in tests/integration)."""

import orjson
import pytest
from click.testing import CliRunner

from streams.cli import evalset, main
from streams.commands.evalset import Published, SetSummary
from streams.errors import EvalSetError

ROWS = b'{"task_id": "T/0", "prompt": "p0", "solution": "s0"}\n{"task_id": "T/1", "prompt": "p1", "solution": "s1"}\n'


@pytest.fixture
def calls(monkeypatch):
    calls = []

    async def add(settings, eval_set):
        calls.append(("add", eval_set))
        return Published(eval_set.name, len(eval_set.items), 3, eval_set.fields, 42)

    async def listing(settings, sequences):
        calls.append(("list", sequences))
        return [SetSummary("gsm8k", 1319, ["answer", "question"], 9000 if sequences else None),
                SetSummary("humaneval", 164, ["canonical_solution", "prompt"], 12425 if sequences else None)]

    async def remove(settings, name):
        calls.append(("remove", name))
        if name == "nope":
            raise EvalSetError("no evaluation set 'nope' on distill.eval-sets (sets: humaneval).\nOperator action: check.")
        return 164

    monkeypatch.setattr(evalset, "add_eval_set", add)
    monkeypatch.setattr(evalset, "list_eval_sets", listing)
    monkeypatch.setattr(evalset, "remove_eval_set", remove)
    return calls


def invoke(*args: str):
    return CliRunner().invoke(main, ["evalset", *args])


def test_add_reads_the_files_with_the_fields_and_id_field_given(calls, tmp_path):
    (tmp_path / "t.jsonl").write_bytes(ROWS)
    result = invoke("add", "tiny", str(tmp_path / "t.jsonl"), "--field", "prompt", "--field", "solution", "--id-field", "task_id")
    assert result.exit_code == 0, result.output
    [(_, eval_set)] = calls
    assert [(i.item_id, i.fields) for i in eval_set.items] == [
        ("T/0", {"prompt": "p0", "solution": "s0"}), ("T/1", {"prompt": "p1", "solution": "s1"})]
    assert "evaluation set 'tiny': 2 items published (fields prompt, solution; 42 word sequences), 3 earlier items retracted" \
        in " ".join(result.output.split())


def test_add_json(calls, tmp_path):
    (tmp_path / "t.jsonl").write_bytes(ROWS)
    result = invoke("add", "tiny", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {"set": "tiny", "items": 2, "retracted": 3, "sequences": 42,
                                           "fields": ["prompt", "solution", "task_id"], "files": [str(tmp_path / "t.jsonl")]}


@pytest.mark.parametrize("args, message", [
    (["tiny", "MISSING"], "MISSING: no such file or folder"),
    (["a/b", "T"], "evaluation set name 'a/b': it must be non-empty and without '/'"),
    (["tiny", "T", "--field", "nope"], "no item has a string field 'nope'"),
    (["tiny", "T", "--id-field", "nope"], "T:1: the id field 'nope' must be a string or an integer; it has none"),
])
def test_add_refuses_bad_input_with_one_message_and_publishes_nothing(calls, tmp_path, args, message):
    (tmp_path / "T").mkdir()
    (tmp_path / "T" / "t.jsonl").write_bytes(ROWS)
    args = [str(tmp_path / a) if a in ("MISSING", "T") else a for a in args]
    result = invoke("add", *args)
    assert result.exit_code == 1 and not calls
    assert result.stderr.startswith("error: ") and message.replace("T:1", f"{tmp_path / 'T' / 't.jsonl'}:1").replace(
        "MISSING", str(tmp_path / "MISSING")) in result.stderr
    assert "Operator action:" in result.stderr and "Traceback" not in result.stderr


def test_add_needs_a_name_and_a_path(calls):
    assert invoke("add", "tiny").exit_code == 2 and not calls


def test_list_prints_a_table_and_json(calls):
    table = invoke("list")
    assert table.exit_code == 0 and calls == [("list", False)]
    assert "humaneval" in table.stdout and "164" in table.stdout and "canonical_solution, prompt" in table.stdout
    assert "word sequences" not in table.stdout
    as_json = invoke("list", "--json", "--sequences")
    assert orjson.loads(as_json.stdout) == {"sets": [
        {"set": "gsm8k", "items": 1319, "fields": ["answer", "question"], "sequences": 9000},
        {"set": "humaneval", "items": 164, "fields": ["canonical_solution", "prompt"], "sequences": 12425}]}
    assert orjson.loads(invoke("list", "--json").stdout)["sets"][0] == {"set": "gsm8k", "items": 1319, "fields": ["answer", "question"]}


def test_list_of_nothing_says_so(monkeypatch):
    async def listing(settings, sequences):
        return []

    monkeypatch.setattr(evalset, "list_eval_sets", listing)
    assert "no evaluation sets registered" in invoke("list").stderr
    assert orjson.loads(invoke("list", "--json").stdout) == {"sets": []}


def test_remove_says_how_many_items_it_retracted(calls):
    assert "evaluation set 'humaneval' removed: 164 items retracted" in invoke("remove", "humaneval").stderr
    assert orjson.loads(invoke("remove", "humaneval", "--json").stdout) == {"set": "humaneval", "retracted": 164}
    missing = invoke("remove", "nope")
    assert missing.exit_code == 1 and missing.stderr.startswith("error: no evaluation set 'nope'")


def test_help_explains_formats_what_is_indexed_and_the_retroactive_pass():
    group = " ".join(invoke("--help").output.split())
    for words in ("13 or more words contributes every run of 13 consecutive words", "8 to 12 words contributes itself whole",
                  "judges every joined run again", "add", "list", "remove"):
        assert words in group, words
    add = " ".join(invoke("add", "--help").output.split())
    for words in (".jsonl.gz", ".parquet", "folders", "--field", "every string field", "--id-field",
                  "position", "one transaction", "replaces"):
        assert words in add, words
