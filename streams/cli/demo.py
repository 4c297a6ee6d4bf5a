"""``distill demo``: the whole loop on bundled sample data."""

from pathlib import Path

import click
from rich.console import Console

from streams.cli.context import Context, quiet_client_logs
from streams.cli.data import stats_table
from streams.commands.demo import demo as run_demo

console = Console()


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True,
              help="Folder for the exported datasets.")
@click.pass_obj
def demo(ctx: Context, out: Path) -> None:
    """Run the whole loop on ~1000 bundled sample runs: local broker, worker, evaluation set
    'demo-bench', ingest, wait, export, stats (secrets, duplicates and overlaps with the
    evaluation set among the reasons). Uses the topic prefix 'distill-demo.' (reset on every run)."""
    settings = ctx.settings(
        topic_prefix=ctx.overrides.get("topic_prefix", "distill-demo."),
        data_dir=ctx.overrides.get("data_dir", Path(".distill-demo")),
        pair_idle_close=3.0, web_enabled=False, processing_guarantee="at_least_once",
    )
    with quiet_client_logs():
        stats = run_demo(settings, out, lambda line: console.print(line, highlight=False, soft_wrap=True))
    console.print(stats_table(stats))
    console.print(f"datasets in {out}/ ; books {'balance' if stats.balanced else 'DO NOT balance'}")
    if not stats.balanced:
        raise SystemExit(1)


COMMANDS = [demo]
