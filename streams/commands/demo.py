"""``distill demo``: broker, worker, bundled sample (and its evaluation set), export and stats, in one command."""

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

from streams.broker import kafka_io
from streams.broker.localkafka.broker import LocalKafka
from streams.broker.topics import TOPIC_SPECS
from streams.commands.evalset import add_eval_set
from streams.commands.evalset_files import read_eval_set
from streams.commands.export import export
from streams.commands.ingest import publish_files
from streams.commands.manifest_publish import manifest_paths, publish_manifest
from streams.commands.stats import Stats, collect
from streams.commands.wait import wait_caught_up
from streams.commands.worker import child_worker
from streams.faust_app.tables import RETIRED_TABLES, TABLE_NAMES, changelog_topic
from streams.settings import DistillSettings

SAMPLE_DATA = Path(__file__).parents[1] / "sample_data"
# The bundled evaluation set, registered as `distill evalset add demo-bench
# streams/sample_data/evalset.jsonl --id-field id` would: some sample runs quote it (SPEC 12).
EVAL_SET_NAME, EVAL_SET_FILE, EVAL_SET_ID_FIELD = "demo-bench", SAMPLE_DATA / "evalset.jsonl", "id"


async def reset_demo_topics(settings: DistillSettings) -> None:
    """The demo owns its prefix: start from empty topics and state, so a re-run shows the same."""
    names = [settings.topic(s.name) for s in TOPIC_SPECS] + [changelog_topic(settings, t) for t in (*TABLE_NAMES, *RETIRED_TABLES)]
    await kafka_io.delete_topics(settings, names)
    await kafka_io.wait_topics_gone(settings, names)
    shutil.rmtree(settings.data_dir, ignore_errors=True)


async def run_demo(settings: DistillSettings, out: Path, say: Callable[[str], None]) -> Stats:
    await reset_demo_topics(settings)
    await kafka_io.ensure_topics(settings)
    paths = manifest_paths(SAMPLE_DATA / "manifest.txt")
    await publish_manifest(settings, paths)
    say(f"published a file manifest of {len(paths)} paths")
    registered = await add_eval_set(settings, read_eval_set(EVAL_SET_NAME, [EVAL_SET_FILE], id_field=EVAL_SET_ID_FIELD))
    say(f"registered evaluation set {registered.name!r}: {registered.items} items, "
        f"{registered.sequences} word sequences (fields {', '.join(registered.fields)})")
    summary = await publish_files(settings, {
        "evidence": [SAMPLE_DATA / "evidence.jsonl"], "scored-runs": [SAMPLE_DATA / "scores.jsonl"],
    })
    say(f"ingested {summary.published['evidence']} evidence and {summary.published['scored-runs']} scored-run lines")
    async with child_worker(settings):
        say("worker started; waiting for it to process everything and close the pair windows")
        await wait_caught_up(settings, timeout=300, say=say)
    say("worker stopped")
    receipt = await export(settings, out, ["rag", "sft", "preference", "quarantine"])
    for relative, info in receipt["files"].items():
        say(f"{info['count']:>6}  {out / relative}")
    say(f"receipt: {out / 'receipt.json'}")
    return await collect(settings)


def demo(settings: DistillSettings, out: Path, say: Callable[[str], None]) -> Stats:
    """Start the local broker if needed (and stop it after, if this started it)."""
    kafka = LocalKafka.from_env()
    started = not kafka.status()["running"]
    say(kafka.up(timeout=180))
    try:
        return asyncio.run(run_demo(settings, out, say))
    finally:
        if started:
            say(kafka.down())
