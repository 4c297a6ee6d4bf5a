"""Keeps the worker's file manifest current; the join waits for its first full load."""

from streams.faust_app.pipeline import Pipeline


def register(pipeline: Pipeline) -> None:
    @pipeline.app.task
    async def follow_file_manifest() -> None:
        if not pipeline.manifest.ready.is_set():
            await pipeline.manifest.follow()
