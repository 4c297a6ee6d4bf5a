"""The state of ``distill ingest --follow``: how far each followed file is published.

``DATA_DIR/ingest-offsets/<id>.json`` (one per topic prefix and set of followed paths) keeps,
per file (by ``topic:device:inode``), the byte offset up to which every line has been
published *and acknowledged*, and the input topics' positions after the last acknowledged
message. It is replaced atomically after each batch, and held by one follower at a time.
"""

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from streams.commands.ingest import INPUT_ORDER
from streams.errors import DistillError
from streams.settings import DistillSettings

HEAD_BYTES = 4096


@dataclass
class Cursor:
    """How far a file is published and acknowledged; ``epoch`` counts its truncations."""

    topic: str
    path: str = ""
    epoch: int = 0
    offset: int = 0
    line: int = 0
    head: str = ""  # sha1 of the first min(offset, HEAD_BYTES) bytes: tells a rewritten file


@dataclass
class OffsetStore:
    """The state file of one follower: cursors by ``topic:device:inode``, input positions."""

    path: Path
    cursors: dict[str, Cursor] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> offset
    saved: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def load(cls, path: Path) -> "OffsetStore":
        if not path.exists():
            return cls(path)
        try:
            data = orjson.loads(path.read_bytes())
            return cls(path, {k: Cursor(**c) for k, c in data["files"].items()}, data["positions"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise DistillError(
                f"{path}: unreadable ingest offsets ({exc}).\n"
                "Operator action: move the file away; the next --follow then publishes the files from their start."
            ) from None

    def save(self) -> None:
        """Write a temporary file, fsync it, rename it over the old one, fsync the folder
        (nothing when nothing changed since the last save)."""
        data = {"version": 1, "files": {k: asdict(c) for k, c in self.cursors.items()}, "positions": self.positions}
        encoded = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        if encoded == self.saved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with temporary.open("wb") as handle:
            handle.write(encoded)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        self.saved = encoded


@contextmanager
def locked_store(path: Path) -> Iterator[OffsetStore]:
    """The store, held by this process alone (two followers of one state would both publish)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DistillError(
                f"another `distill ingest --follow` of the same files and prefix is running ({path}).\n"
                "Operator action: stop it first, or follow other files."
            ) from None
        yield OffsetStore.load(path)


def offsets_file(settings: DistillSettings, sources: dict[str, list[Path]]) -> Path:
    """One state file per topic prefix and set of followed paths."""
    identity = [settings.topic_prefix] + [
        f"{topic}={path}" for topic in INPUT_ORDER for path in sorted({p.resolve() for p in sources.get(topic, [])})
    ]
    digest = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:16]
    return settings.data_dir / "ingest-offsets" / f"{digest}.json"
