"""Keeps the worker's views of the file manifest and the evaluation sets current; the join
waits for the first full load of both (the worker loads the sets before Faust starts)."""

from streams.faust_app.agents.pair_agent import send_ticks
from streams.faust_app.pipeline import Pipeline


def register(pipeline: Pipeline) -> None:
    @pipeline.app.task
    async def follow_file_manifest() -> None:
        if not pipeline.manifest.ready.is_set():
            await pipeline.manifest.follow()

    @pipeline.app.task
    async def follow_evaluation_sets() -> None:
        # A change starts each partition's retroactive pass at its next tick: ask for one now.
        pipeline.evalsets.on_change = lambda: send_ticks(pipeline)
        await pipeline.evalsets.follow()
