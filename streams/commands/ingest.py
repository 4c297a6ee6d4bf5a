"""Publishing JSONL files to the input topics, keyed by run id (``distill ingest``).

Each line goes out as it is in the file, invalid ones too: the worker, not the
publisher, decides what is valid, so a bad line ends in the quarantine with a reason.

One-shot ingest is stateless: each run publishes every line of the files again, and
remembers nothing. ``--follow`` (``streams.commands.follow``) is the resumable mode, publishing
each line once across restarts. Both turn lines into messages here.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

from streams.broker import kafka_io
from streams.settings import DistillSettings

KEY_FIELD = {"evidence": "run_id", "scored-runs": "evidence_run_id"}
INPUT_ORDER = ("evidence", "scored-runs")  # evidence first, so a batch joins without waiting


@dataclass
class IngestSummary:
    published: dict[str, int] = field(default_factory=lambda: {"evidence": 0, "scored-runs": 0})
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Line:
    """A non-blank line: its 1-based number, the byte offset just past it, its bytes."""

    number: int
    end: int
    data: bytes


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, folders as every ``*.jsonl`` below them, in name order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.rglob("*.jsonl")))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder; pass JSONL files or folders holding *.jsonl")
    return found


def key_for(line: bytes, key_field: str, where: str) -> bytes:
    """The run id of a line; a line without one is keyed by its place in the file instead
    (compacted topics refuse null keys), and still published for the quarantine to show."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
    value = obj.get(key_field) if isinstance(obj, dict) else None
    return value.encode() if isinstance(value, str) and value else f"unkeyed:{where}".encode()


def message_for(topic: str, file_name: str, line: Line) -> tuple[bytes, bytes]:
    """The key and value a line of ``file_name`` is published with to input ``topic``."""
    return key_for(line.data, KEY_FIELD[topic], f"{file_name}:{line.number}"), line.data


def read_lines(handle: BinaryIO, number: int = 0, *, complete_only: bool = False) -> Iterator[Line]:
    """Non-blank lines from the handle's position, after ``number`` lines already read.

    With ``complete_only``, a last line without its newline yet is left for a later read.
    """
    position = handle.tell()
    for raw in iter(handle.readline, b""):
        if complete_only and not raw.endswith(b"\n"):
            return
        number += 1
        position += len(raw)
        data = raw.rstrip(b"\r\n")
        if data.strip():
            yield Line(number, position, data)


def lines_of(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with their 1-based numbers, bytes as they are (no decoding here)."""
    with path.open("rb") as handle:
        for line in read_lines(handle):
            yield line.number, line.data


async def publish_files(
    settings: DistillSettings, files: dict[str, list[Path]], progress: Callable[[int], None] = lambda n: None
) -> IngestSummary:
    """Publish evidence files first, then scores, so a batch joins without waiting."""
    await kafka_io.ensure_topics(settings)
    summary = IngestSummary()
    async with kafka_io.started(kafka_io.producer(settings)) as producer:
        for topic in INPUT_ORDER:
            for path in files.get(topic, []):
                summary.files.append(str(path))
                pending = []
                with path.open("rb") as handle:
                    for line in read_lines(handle):
                        key, value = message_for(topic, path.name, line)
                        pending.append(await producer.send(settings.topic(topic), value, key=key))
                        summary.published[topic] += 1
                        progress(1)
                for future in pending:
                    await future
    return summary
