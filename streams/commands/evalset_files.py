"""Reading an evaluation set from files: JSONL (also gzipped) and Parquet, or folders of them.

Folders are read as a dataset's data files are: every ``*.jsonl``, ``*.jsonl.gz`` and
``*.parquet`` under them, recursively, in sorted order. Everything is checked before anything
is published; each problem is one ``EvalSetError`` naming the file and line (or row).
"""

import gzip
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.errors import EvalSetError
from streams.rules.decontamination import EvalItem

SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
Progress = Callable[[int], None]  # told how many more bytes of the files are read


@dataclass(frozen=True)
class EvalSet:
    """A set read from files, ready to publish."""

    name: str
    items: list[EvalItem]
    files: list[Path]

    @property
    def fields(self) -> list[str]:
        """The fields indexed in at least one item."""
        return sorted({field for item in self.items for field in item.fields})


def check_name(name: str) -> None:
    if not name or "/" in name:
        raise EvalSetError(f"evaluation set name {name!r}: it must be non-empty and without '/' "
                           "(the set's keys on the topic are NAME/ITEM_ID).\nOperator action: choose another name.")


def data_files(paths: list[Path]) -> list[Path]:
    """The files to read, in order: named files as they are, folders expanded."""
    files = []
    for path in paths:
        if path.is_dir():
            try:
                found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            except OSError as exc:
                raise EvalSetError(f"{path}: cannot be listed: {exc}.\nOperator action: check the folder.") from None
            if not found:
                raise EvalSetError(f"{path}: no {', '.join(SUFFIXES)} files in this folder.\n"
                                   "Operator action: point at the folder or files that hold the set's items.")
            files.extend(found)
        elif path.is_file():
            if not path.name.endswith(SUFFIXES):
                raise EvalSetError(f"{path}: not a JSONL (.jsonl, .jsonl.gz) or Parquet (.parquet) file by its name.\n"
                                   "Operator action: convert it, or rename it if that is what it holds.")
            files.append(path)
        else:
            raise EvalSetError(f"{path}: no such file or folder.\nOperator action: check the path.")
    return files


def read_eval_set(name: str, paths: list[Path], fields: list[str] | None = None, id_field: str | None = None,
                  progress: Progress | None = None) -> EvalSet:
    """The items of the files: ``fields`` (default: every top-level string field) of each row,
    its id the value of ``id_field`` (default: its position, 0-based across the files)."""
    check_name(name)
    files = data_files(paths)
    items, seen, strings = [], {}, set()
    for where, row in _rows(files, progress or (lambda n: None)):
        strings.update(k for k, v in row.items() if isinstance(v, str))
        item_id = _item_id(row, id_field, where) if id_field else str(len(items))
        if item_id in seen:
            raise EvalSetError(f"{where}: id {item_id!r} (field {id_field!r}) repeats that of {seen[item_id]}.\n"
                               "Operator action: name an --id-field whose values are unique, or leave it out "
                               "(the items are then numbered).")
        seen[item_id] = where
        wanted = row if fields is None else {f: row[f] for f in fields if f in row}
        items.append(EvalItem(name, item_id, {k: v for k, v in wanted.items() if isinstance(v, str)}))
    _check_not_empty(name, files, items, fields, strings)
    return EvalSet(name, items, files)


def _item_id(row: dict[str, Any], id_field: str, where: str) -> str:
    value = row.get(id_field)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        got = "it has none" if value in (None, "") else f"it is {type(value).__name__} {value!r}"
        raise EvalSetError(f"{where}: the id field {id_field!r} must be a string or an integer; {got}.\n"
                           "Operator action: name an --id-field that every item has, or leave it out "
                           "(the items are then numbered).")
    return str(value)


def _check_not_empty(name: str, files: list[Path], items: list[EvalItem], fields: list[str] | None,
                     strings: set[str]) -> None:
    """Items, each named field in one at least, and something to index: else an error."""
    read = ", ".join(map(str, files))
    if not items:
        raise EvalSetError(f"evaluation set {name!r}: no items in {read}.\nOperator action: check the files.")
    if fields is not None and (missing := [f for f in fields if f not in strings]):
        raise EvalSetError(f"evaluation set {name!r}: no item has a string field {missing[0]!r} "
                           f"(the items' string fields: {', '.join(sorted(strings)) or 'none'}).\n"
                           "Operator action: check the --field names.")
    if not any(item.fields for item in items):
        raise EvalSetError(f"evaluation set {name!r}: none of the {len(items)} items of {read} has a string field "
                           "to index.\nOperator action: check the files (top-level string fields are indexed).")


def _rows(files: list[Path], progress: Progress) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in files:
        yield from (_parquet_rows if path.name.endswith(".parquet") else _jsonl_rows)(path, progress)


def _jsonl_rows(path: Path, progress: Progress) -> Iterator[tuple[str, dict[str, Any]]]:
    number = 0
    try:
        with path.open("rb") as raw:
            lines = gzip.GzipFile(fileobj=raw) if path.name.endswith(".gz") else raw
            done = 0
            for number, line in enumerate(lines, 1):
                progress(raw.tell() - done)
                done = raw.tell()
                if line.strip():
                    yield f"{path}:{number}", _object(line, f"{path}:{number}")
    except (OSError, EOFError, zlib.error) as exc:
        where = f"{path}:{number + 1}" if number else str(path)
        raise EvalSetError(f"{where}: cannot be read: {exc}.\nOperator action: check the file.") from None


def _object(line: bytes, where: str) -> dict[str, Any]:
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EvalSetError(f"{where}: not valid UTF-8 JSON ({exc}).\nOperator action: fix or remove the line.") from None
    if not isinstance(row, dict):
        raise EvalSetError(f"{where}: a JSON {type(row).__name__}, not an object (one item a line).\n"
                           "Operator action: fix or remove the line.")
    return row


def _parquet_rows(path: Path, progress: Progress) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        reader = pq.ParquetFile(path)
        size, total = path.stat().st_size, max(reader.metadata.num_rows, 1)
        for batch in reader.iter_batches(batch_size=512):
            progress(size * batch.num_rows // total)
            for values in batch.to_pylist():
                row += 1
                yield f"{path}, row {row}", values
    except (OSError, pa.ArrowException) as exc:
        raise EvalSetError(f"{path}, row {row + 1}: cannot be read as Parquet: {exc}.\n"
                           "Operator action: check the file.") from None
