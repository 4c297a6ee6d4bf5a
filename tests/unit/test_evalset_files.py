"""Reading an evaluation set from JSONL, gzipped JSONL and Parquet files, and every way it can fail."""

import gzip
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streams.commands.evalset_files import read_eval_set
from streams.errors import EvalSetError
from streams.rules.decontamination import EvalItem
from tests.humaneval import HUMANEVAL_GZ

ROWS = [
    {"id": "a", "question": "What is two plus two?", "answer": "four", "score": 1},
    {"id": "b", "question": "Name a prime.", "answer": "seven", "tags": ["x"]},
]


def jsonl(path: Path, rows: list, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows)
    path.write_bytes(gzip.compress(body) if gz else body)
    return path


def parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def error_of(*args, **kwargs) -> str:
    with pytest.raises(EvalSetError) as caught:
        read_eval_set(*args, **kwargs)
    assert "Operator action:" in str(caught.value)
    return str(caught.value)


def test_every_top_level_string_field_is_indexed_by_default_and_ids_are_positions(tmp_path):
    got = read_eval_set("qa", [jsonl(tmp_path / "qa.jsonl", ROWS)])
    assert got.items == [
        EvalItem("qa", "0", {"id": "a", "question": "What is two plus two?", "answer": "four"}),
        EvalItem("qa", "1", {"id": "b", "question": "Name a prime.", "answer": "seven"}),
    ]
    assert got.fields == ["answer", "id", "question"]


def test_fields_and_id_field_choose_what_is_indexed_and_the_ids(tmp_path):
    rows = [*ROWS, {"id": "c", "question": ["not", "a", "string"], "answer": "none"}]
    got = read_eval_set("qa", [jsonl(tmp_path / "qa.jsonl", rows)], ["question", "question"], "id")
    assert got.items == [EvalItem("qa", "a", {"question": "What is two plus two?"}),
                         EvalItem("qa", "b", {"question": "Name a prime."}), EvalItem("qa", "c", {})]


def test_integer_ids_are_their_decimal_text(tmp_path):
    rows = [{"n": 7, "q": "x"}, {"n": 10, "q": "y"}]
    assert [i.item_id for i in read_eval_set("s", [jsonl(tmp_path / "s.jsonl", rows)], id_field="n").items] == ["7", "10"]


def test_gzipped_jsonl_parquet_and_folders_read_in_sorted_order_with_positions_across_files(tmp_path):
    folder = tmp_path / "data"
    parquet(folder / "b" / "test-00001.parquet", [{"q": "third"}])
    jsonl(folder / "a.jsonl.gz", [{"q": "first"}, b"", {"q": "second"}], gz=True)
    (folder / "README.md").write_text("not data")
    got = read_eval_set("s", [folder, jsonl(tmp_path / "z.jsonl", [{"q": "fourth"}])])
    assert [(i.item_id, i.fields["q"]) for i in got.items] == [("0", "first"), ("1", "second"), ("2", "third"), ("3", "fourth")]
    assert [f.name for f in got.files] == ["a.jsonl.gz", "test-00001.parquet", "z.jsonl"]


def test_humaneval_as_shipped(tmp_path):
    got = read_eval_set("humaneval", [HUMANEVAL_GZ], ["prompt", "canonical_solution"], "task_id")
    assert len(got.items) == 164 and got.items[0].item_id == "HumanEval/0"
    assert got.fields == ["canonical_solution", "prompt"]


def test_progress_counts_the_bytes_of_the_files(tmp_path):
    files = [jsonl(tmp_path / "a.jsonl", ROWS), jsonl(tmp_path / "b.jsonl.gz", ROWS * 50, gz=True),
             parquet(tmp_path / "c.parquet", ROWS)]
    read = []
    read_eval_set("s", files, progress=read.append)
    assert sum(read) == sum(f.stat().st_size for f in files)


@pytest.mark.parametrize("name", ["", "a/b"])
def test_a_name_empty_or_with_a_slash_is_refused(tmp_path, name):
    assert "must be non-empty and without '/'" in error_of(name, [jsonl(tmp_path / "s.jsonl", ROWS)])


def test_a_missing_path_is_named(tmp_path):
    assert error_of("s", [tmp_path / "nope.jsonl"]).startswith(f"{tmp_path / 'nope.jsonl'}: no such file or folder")


def test_a_folder_without_data_files_and_a_file_of_another_kind_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no .jsonl, .jsonl.gz, .parquet files" in error_of("s", [tmp_path / "empty"])
    (tmp_path / "items.csv").write_text("a,b\n")
    assert "not a JSONL (.jsonl, .jsonl.gz) or Parquet (.parquet) file" in error_of("s", [tmp_path / "items.csv"])


def test_a_line_that_is_not_a_json_object_is_named_with_its_line_number(tmp_path):
    path = jsonl(tmp_path / "s.jsonl", [ROWS[0], b"{broken", ROWS[1]])
    assert error_of("s", [path]).startswith(f"{path}:2: not valid UTF-8 JSON")
    path = jsonl(tmp_path / "t.jsonl", [ROWS[0], b"", b"[1, 2]"])
    assert error_of("s", [path]).startswith(f"{path}:3: a JSON list, not an object")
    path = jsonl(tmp_path / "u.jsonl", [b'{"q": "caf\xe9"}'])
    assert error_of("s", [path]).startswith(f"{path}:1: not valid UTF-8 JSON")


def test_a_broken_gzip_or_parquet_file_is_named(tmp_path):
    path = tmp_path / "s.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"q": "x"}\n' * 1000)[:-40])
    assert error_of("s", [path]).startswith(f"{path}:")
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 not really")
    assert "cannot be read as Parquet" in error_of("s", [path])


def test_an_unreadable_file_is_named(tmp_path):
    path = jsonl(tmp_path / "s.jsonl", ROWS)
    path.chmod(0)
    try:
        if path.open("rb"):  # root reads anything: nothing to test then
            pytest.skip("running as root")
    except PermissionError:
        assert error_of("s", [path]).startswith(f"{path}: cannot be read")
    finally:
        path.chmod(0o644)


def test_a_field_no_item_has_is_refused(tmp_path):
    message = error_of("s", [jsonl(tmp_path / "s.jsonl", ROWS)], ["question", "solution"])
    assert "no item has a string field 'solution' (the items' string fields: answer, id, question)" in message
    assert "no item has a string field 'tags'" in error_of("s", [jsonl(tmp_path / "t.jsonl", ROWS)], ["tags"])


def test_an_empty_set_is_refused(tmp_path):
    assert "no items in" in error_of("s", [jsonl(tmp_path / "s.jsonl", [b"", b"  "])])
    assert "has a string field to index" in error_of("s", [jsonl(tmp_path / "t.jsonl", [{"n": 1}, {"tags": ["a"]}])])


def test_repeated_ids_are_named(tmp_path):
    path = jsonl(tmp_path / "s.jsonl", [*ROWS, {"id": "a", "question": "again"}])
    assert error_of("s", [path], id_field="id").startswith(f"{path}:3: id 'a' (field 'id') repeats that of {path}:1")


@pytest.mark.parametrize("row, got", [({"q": "x"}, "it has none"), ({"id": None}, "it has none"), ({"id": ""}, "it has none"),
                                      ({"id": 1.5}, "it is float 1.5"), ({"id": True}, "it is bool True")])
def test_a_missing_or_unusable_id_is_named(tmp_path, row, got):
    path = jsonl(tmp_path / "s.jsonl", [ROWS[0], row])
    assert error_of("s", [path], id_field="id") == (
        f"{path}:2: the id field 'id' must be a string or an integer; {got}.\n"
        "Operator action: name an --id-field that every item has, or leave it out (the items are then numbered).")
