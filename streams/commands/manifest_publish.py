"""``distill manifest publish``: the paths of a checkout onto the compacted manifest topic."""

import subprocess
from pathlib import Path

from schemas.codec import dumps
from streams.broker import kafka_io
from streams.settings import DistillSettings


def manifest_paths(path: Path) -> list[str]:
    """Tracked files of a git checkout, else every file under a folder, else a list file."""
    if path.is_file():
        return sorted({line.strip() for line in path.read_text().splitlines() if line.strip()})
    tracked = subprocess.run(["git", "-C", str(path), "ls-files", "-z"], capture_output=True)
    if tracked.returncode == 0:
        return sorted(p for p in tracked.stdout.decode().split("\0") if p)
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


async def publish_manifest(settings: DistillSettings, paths: list[str]) -> tuple[int, int]:
    """Publish ``paths``; tombstone those published before that are gone now."""
    await kafka_io.ensure_topics(settings)
    name = settings.topic("file-manifest")
    live, _ = await kafka_io.latest_values(settings, name)
    gone = sorted(set(live) - {p.encode() for p in paths})
    async with kafka_io.started(kafka_io.producer(settings)) as producer:
        for path in paths:
            await producer.send(name, dumps({"path": path}), key=path.encode())
        for key in gone:
            await producer.send(name, None, key=key)
        await producer.flush()
    return len(paths), len(gone)
