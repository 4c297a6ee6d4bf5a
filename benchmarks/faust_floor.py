"""The Faust floor: a trivial Faust worker that forwards each input message once, no logic.

    python benchmarks/faust_floor.py BOOTSTRAP APP_ID OUTPUT INPUT... (guarantee from DISTILL_PROCESSING_GUARANTEE)

Run by ``benchmarks/run.py`` as a child process, with the worker's own Faust settings (the
event loop, fetch wait, linger, guarantee, one ``await topic.send`` per event), so the
pipeline's figures can be read against what Faust itself costs on this machine.
"""

import asyncio
import sys
import tempfile
from pathlib import Path

import faust
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.faust_fixes import fetch_wait  # noqa: E402
from streams.settings import DistillSettings  # noqa: E402


def build(bootstrap: str, app_id: str, output: str, inputs: list[str]) -> faust.App:
    settings = DistillSettings()
    app = faust.App(
        app_id, broker=f"kafka://{bootstrap}", store="memory://", datadir=tempfile.mkdtemp(prefix="faust-floor-"),
        processing_guarantee=settings.processing_guarantee, consumer_auto_offset_reset="earliest",
        key_serializer="raw", value_serializer="raw", autodiscover=False, web_enabled=False,
        producer_linger_ms=5, producer_max_batch_size=256 * 1024, topic_partitions=settings.partitions,
    )
    fetch_wait.install(app, settings.fetch_max_wait, settings.fetch_min_bytes)
    out = app.topic(output, key_type=bytes, value_type=bytes, internal=False)
    for name in inputs:
        @app.agent(app.topic(name, key_type=bytes, value_type=bytes, internal=False), name=f"forward-{name}")
        async def forward(stream):
            async for event in stream.events():
                await out.send(key=event.message.key, value=event.message.value)
    return app


def main() -> None:
    bootstrap, app_id, output, *inputs = sys.argv[1:]
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = build(bootstrap, app_id, output, inputs)
    worker = faust.Worker(app, loop=loop, loglevel="WARNING", quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
