"""``distill ingest``, ``manifest publish``, ``wait``, ``export`` and ``stats``."""

from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from streams.cli.context import Context, run, say_on
from streams.commands.export import FILE_FORMATS, PREFERENCE_FORMATS, ExportOptions, export
from streams.commands.export_formats import KINDS
from streams.commands.follow import follow_until_signalled
from streams.commands.ingest import expand, lines_of, publish_files
from streams.commands.manifest_publish import manifest_paths, publish_manifest
from streams.commands.stats import Stats, collect
from streams.commands.wait import wait_caught_up

console = Console(stderr=True)


def _print_json(data) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


@click.command("ingest")
@click.option("--evidence", "evidence", multiple=True, type=click.Path(path_type=Path), help="Evidence JSONL file or folder (repeatable).")
@click.option("--scores", "scores", multiple=True, type=click.Path(path_type=Path), help="Scored-run JSONL file or folder (repeatable).")
@click.option("--follow", is_flag=True,
              help="Keep publishing what the files gain (appended lines, new files, rotated files) until stopped.")
@click.option("--poll-interval", type=click.FloatRange(0.05, 10), default=0.25, show_default=True,
              help="Seconds between looks at the files (with --follow).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of text.")
@click.pass_obj
def ingest(
    ctx: Context, evidence: tuple[Path, ...], scores: tuple[Path, ...], follow: bool, poll_interval: float, as_json: bool
) -> None:
    """Publish JSONL files (or every *.jsonl under a folder) to the input topics, keyed by run id.

    Invalid lines are published too, so the quarantine shows them with a reason. Without
    --follow every line of the files is published on each run (nothing is remembered).
    With --follow the files are tailed until Ctrl-C or SIGTERM: only complete lines go out,
    each once, and the offsets acknowledged by the broker are kept under
    DATA_DIR/ingest-offsets/, so a restart carries on where the last run stopped.
    """
    if not evidence and not scores:
        raise click.UsageError("nothing to ingest: pass --evidence PATH and/or --scores PATH")
    try:
        files = {"evidence": expand(list(evidence)), "scored-runs": expand(list(scores))}
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    if follow:
        _follow(ctx, {"evidence": list(evidence), "scored-runs": list(scores)}, poll_interval, as_json)
        return
    total = sum(1 for paths in files.values() for p in paths for _ in lines_of(p))
    # Off when stderr is no terminal: there it would only add a blank line before any message.
    with Progress(console=console, disable=as_json or not console.is_terminal, transient=True) as progress:
        task = progress.add_task("publishing", total=total)
        summary = run(publish_files(ctx.settings(), files, lambda n: progress.advance(task, n)))
    if as_json:
        _print_json({"published": summary.published, "files": summary.files})
    else:
        console.print(f"published {summary.published['evidence']} evidence and "
                      f"{summary.published['scored-runs']} scored-run messages from {len(summary.files)} files")


def _follow(ctx: Context, sources: dict[str, list[Path]], poll_interval: float, as_json: bool) -> None:
    columns = (SpinnerColumn(), TextColumn("{task.description:<12}"), TextColumn("{task.completed:>9} lines published"))
    # Transient: the summary below (or the error) is the last word, not a stale progress line.
    with Progress(*columns, console=console, disable=as_json or not console.is_terminal, transient=True) as progress:
        tasks = {topic: progress.add_task(topic, total=None) for topic, paths in sources.items() if paths}
        summary = run(follow_until_signalled(
            ctx.settings(), sources, lambda topic, n: progress.advance(tasks[topic], n), poll_interval
        ))
    if as_json:
        _print_json(summary.to_dict())
    else:
        console.print(f"stopped: published {summary.published['evidence']} evidence and "
                      f"{summary.published['scored-runs']} scored-run messages; offsets in {summary.offsets_file}")


@click.group("manifest")
def manifest() -> None:
    """The file manifest that `hallucinated_file_path` checks against."""


@manifest.command("publish")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def manifest_publish(ctx: Context, path: Path, as_json: bool) -> None:
    """Publish the files of PATH: a git checkout's tracked files, every file under a folder,
    or the paths listed one a line in a text file. Paths gone since the last publish are
    retracted."""
    paths = manifest_paths(path)
    published, retracted = run(publish_manifest(ctx.settings(), paths))
    if as_json:
        _print_json({"published": published, "retracted": retracted})
    else:
        console.print(f"manifest: {published} paths published, {retracted} retracted")


@click.command("wait")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds before giving up (exit 1).")
@click.pass_obj
def wait(ctx: Context, timeout: float) -> None:
    """Block until the worker has consumed every input published so far and every
    closable pair window is closed.

    Says on stderr what it waits for: the input topics to be created (nothing has run with
    the prefix yet), the worker (and whether one runs), the pair windows. A broker restart
    while it waits is waited out within the timeout."""
    with console.status("waiting for the worker to catch up"):
        run(wait_caught_up(ctx.settings(), timeout, say=say_on(console)))
    console.print("caught up")


@click.command("export")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write into.")
@click.option("--kind", type=click.Choice([*KINDS, "all"]), default="all", show_default=True)
@click.option("--format", "file_format", type=click.Choice(FILE_FORMATS), default="jsonl", show_default=True,
              help="File format of the datasets: JSONL (the files SPEC 9 names), Parquet (X.parquet instead of "
                   "X.jsonl, written from one fixed Arrow schema per file, times as UTC timestamps), or both side "
                   "by side. The OpenAI files are JSONL whatever this says.")
@click.option("--preference-format", type=click.Choice(PREFERENCE_FORMATS), default="plain", show_default=True,
              help="plain: prompt/chosen/rejected as strings (preference/chosen_rejected.*). trl: TRL's "
                   "conversational form, lists of {role, content} messages like the SFT file's "
                   "(preference_trl/chosen_rejected.*), so DPOTrainer applies the same chat template as "
                   "SFTTrainer. both: both files.")
@click.option("--openai", is_flag=True,
              help="Also write OpenAI-style fine-tuning files: openai/sft.jsonl (lines holding only `messages`) "
                   "and openai/preference.jsonl (input.messages, preferred_output, non_preferred_output).")
@click.option("--card/--no-card", default=True, show_default=True,
              help="Write DIR/README.md, a dataset card whose configs let `datasets.load_dataset(DIR, NAME)` "
                   "load each file with fixed features.")
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
@click.pass_obj
def export_command(
    ctx: Context, out: Path, kind: str, file_format: str, preference_format: str, openai: bool, card: bool, as_json: bool
) -> None:
    """Write the live datasets sorted by id, a dataset card (DIR/README.md) and DIR/receipt.json.

    Without flags: DIR/rag/samples.jsonl, DIR/sft/samples.jsonl,
    DIR/preference/chosen_rejected.jsonl and DIR/quarantine/records.jsonl (its
    source_record as a JSON string, so every Arrow reader loads it). Exporting twice
    with no new input writes the same bytes. Topics that do not exist (nothing has run with
    the prefix) end the command with exit 1 and nothing written; existing but empty topics
    give empty files.
    """
    kinds = list(KINDS) if kind == "all" else [kind]
    options = ExportOptions(file_format=file_format, preference_format=preference_format, openai=openai, card=card)
    with console.status("reading output topics"):
        receipt = run(export(ctx.settings(), out, kinds, options))
    if as_json:
        _print_json(receipt)
        return
    for relative, info in receipt["files"].items():
        console.print(f"{info['count']:>7}  {out / relative}")
    if "card" in receipt:
        console.print(f"card:    {out / 'README.md'}")
    console.print(f"receipt: {out / 'receipt.json'}")


def stats_table(stats: Stats) -> Table:
    table = Table(title="distill stats", show_lines=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("valid scores (distinct runs)", stats.valid_scores), ("joined runs", stats.joined),
        ("pending joins (waiting for evidence)", stats.pending_joins), ("timed out at join", stats.join_timed_out),
        *((f"{s} samples live", n) for s, n in stats.samples_live.items()),
        *((f"{s} runs quarantined (latest outcome)", n) for s, n in stats.stage_quarantined.items()),
        *((f"{s} duplicates (same content as a live sample)", n) for s, n in stats.duplicates.items()),
        *((f"runs overlapping evaluation set {name!r}", n) for name, n in stats.contaminated_by_set.items()),
        *((f"secrets found: rule {rule}", n) for rule, n in stats.secret_findings.items()),
        ("input messages", stats.input_messages), ("invalid input messages", stats.invalid_input_messages),
        ("pair windows open", stats.open_windows), ("pair windows closed", stats.closed_windows),
        ("insufficient_pair_tasks", stats.insufficient_pair_tasks), ("consumer lag", stats.consumer_lag),
    ]
    for what, count in rows:
        table.add_row(what, str(count))
    for stage, reasons in stats.quarantine_by_stage_reason.items():
        for reason, count in reasons.items():
            table.add_row(f"quarantine records: {stage} / {reason}", str(count))
    if stats.windows_past_close:
        table.add_row(
            "[bold yellow]warning: pair windows open past their close (a stalled worker? see its /health)[/]",
            f"[bold yellow]{len(stats.windows_past_close)}[/]",
        )
        table.add_row(f"  e.g. {stats.windows_past_close[0]}", "")
    for check, ok in stats.checks.items():
        table.add_row(f"check: {check}", "[green]ok[/]" if ok else "[red]FAILS[/]")
    table.add_row("[bold]books balance[/]", "[bold green]yes[/]" if stats.balanced else "[bold red]NO[/]")
    return table


@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_obj
def stats(ctx: Context, as_json: bool) -> None:
    """Counts by stage and reason, pending joins, pair windows, lag, and whether the books balance.

    Exit 1 when the prefix's topics do not exist (nothing has run with it)."""
    with console.status("reading topics and tables"):
        figures = run(collect(ctx.settings()))
    if as_json:
        _print_json(figures.to_dict())
    else:
        Console().print(stats_table(figures))


COMMANDS = [ingest, manifest, wait, export_command, stats]
