"""The file manifest: repo-relative paths known to exist, read from the compacted topic.

Every worker needs every path, so this is a plain reader of the whole topic rather
than a Faust GlobalTable (which can loop in recovery with several workers). The set is
bounded by the size of a checkout, not by the number of runs.
"""

import asyncio
import logging

from streams.broker import kafka_io
from streams.settings import DistillSettings

log = logging.getLogger(__name__)


class ManifestView:
    """``path in manifest`` and ``len(manifest)``, as the path gate reads them."""

    def __init__(self, settings: DistillSettings, paths: set[str] | None = None) -> None:
        self.settings = settings
        self.paths: set[str] = set(paths or ())
        self.ready = asyncio.Event()
        if paths is not None:
            self.ready.set()

    def __contains__(self, path: object) -> bool:
        return path in self.paths

    def __len__(self) -> int:
        return len(self.paths)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        path = key.decode("utf-8", "replace")
        if value is None:
            self.paths.discard(path)
        else:
            self.paths.add(path)

    async def follow(self) -> None:
        """Load the topic to its end (then mark ready), and keep applying new entries."""
        name = self.settings.topic("file-manifest")
        async for message in kafka_io.read_topic(self.settings, name, give_up=False):
            self.apply(message.key, message.value)
        self.ready.set()
        log.info("file manifest loaded: %d paths", len(self.paths))
        ends = await kafka_io.end_offsets(self.settings, [name])
        async with kafka_io.started(kafka_io.consumer(self.settings)) as reader:
            reader.assign(list(ends))
            for tp, end in ends.items():
                reader.seek(tp, end)
            while True:
                batch = await reader.getmany(timeout_ms=1000)
                for messages in batch.values():
                    for message in messages:
                        self.apply(message.key, message.value)
                await asyncio.sleep(0)
