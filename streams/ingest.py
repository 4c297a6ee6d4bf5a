"""Publishing JSONL files to the input topics, keyed by run id (``distill ingest``).

Each line goes out as it is in the file, invalid ones too: the worker, not the
publisher, decides what is valid, so a bad line ends in the quarantine with a reason.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from streams import kafka_io
from streams.settings import DistillSettings

KEY_FIELD = {"evidence": "run_id", "scored-runs": "evidence_run_id"}


@dataclass
class IngestSummary:
    published: dict[str, int] = field(default_factory=lambda: {"evidence": 0, "scored-runs": 0})
    files: list[str] = field(default_factory=list)


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


def lines_of(path: Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with their 1-based numbers, bytes as they are (no decoding here)."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


async def publish_files(
    settings: DistillSettings, files: dict[str, list[Path]], progress: Callable[[int], None] = lambda n: None
) -> IngestSummary:
    """Publish evidence files first, then scores, so a batch joins without waiting."""
    await kafka_io.ensure_topics(settings)
    summary = IngestSummary()
    producer = kafka_io.producer(settings)
    await producer.start()
    try:
        for topic in ("evidence", "scored-runs"):
            for path in files.get(topic, []):
                summary.files.append(str(path))
                pending = []
                for number, line in lines_of(path):
                    key = key_for(line, KEY_FIELD[topic], f"{path.name}:{number}")
                    pending.append(await producer.send(settings.topic(topic), line, key=key))
                    summary.published[topic] += 1
                    progress(1)
                for future in pending:
                    await future
    finally:
        await producer.stop()
    return summary
