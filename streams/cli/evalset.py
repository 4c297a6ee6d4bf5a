"""``distill evalset add|list|remove``: register the evaluation sets that samples must not overlap."""

from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table

from streams.cli.context import Context, run
from streams.commands.evalset import add_eval_set, list_eval_sets, remove_eval_set
from streams.commands.evalset_files import data_files, read_eval_set

console = Console(stderr=True)


def _print_json(data) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


@click.group("evalset")
def evalset() -> None:
    """Evaluation sets: benchmarks whose items must stay out of the datasets (SPEC 12).

    A sample whose text contains a word sequence of a registered set is quarantined as
    benchmark_contamination. Words: NFKC, lower case, every character that is not a letter or
    digit becomes a space. An indexed field of 13 or more words contributes every run of 13
    consecutive words; a field of 8 to 12 words contributes itself whole; shorter fields
    nothing. When a set is added, replaced or removed, the worker judges every joined run
    again: samples that now overlap are retracted, runs clean again get their samples back.
    """


@evalset.command("add")
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--field", "fields", multiple=True,
              help="Index this field of each item (repeatable). Default: every string field at an item's top level.")
@click.option("--id-field", help="The field whose value is an item's id. Default: the item's position "
                                 "(0-based, in reading order across the files).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of text.")
@click.pass_obj
def add(ctx: Context, name: str, paths: tuple[Path, ...], fields: tuple[str, ...], id_field: str | None,
        as_json: bool) -> None:
    """Publish set NAME, one item per JSON object, from PATHS: JSONL files (.jsonl, or gzipped
    .jsonl.gz), Parquet files (.parquet), or folders of them (read recursively, in sorted
    order, as a dataset's data files).

    Each item goes to the eval-sets topic under the key NAME/ITEM_ID with its indexed string
    fields (what they contribute to the index: `distill evalset --help`). The whole set is written in one transaction, and adding a set again replaces it
    (its items that are gone are retracted). Nothing is published when a file cannot be read,
    a --field is in no item, an id repeats or is missing, or the set is empty.
    """
    files = data_files(list(paths))
    columns = (TextColumn("reading"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=console, disable=as_json or not console.is_terminal, transient=True) as progress:
        task = progress.add_task("reading", total=sum(f.stat().st_size for f in files))
        eval_set = read_eval_set(name, files, list(dict.fromkeys(fields)) or None, id_field,
                                 lambda n: progress.advance(task, n))
    with console.status(f"publishing {len(eval_set.items)} items"):
        published = run(add_eval_set(ctx.settings(), eval_set))
    if as_json:
        _print_json(published.to_dict() | {"files": [str(f) for f in eval_set.files]})
    else:
        console.print(f"evaluation set {name!r}: {published.items} items published "
                      f"(fields {', '.join(published.fields)}; {published.sequences} word sequences), "
                      f"{published.retracted} earlier items retracted")


@evalset.command("list")
@click.option("--sequences", is_flag=True, help="Also count the word sequences each set indexes (reads every item).")
@click.option("--json", "as_json", is_flag=True, help="Print the sets as JSON.")
@click.pass_obj
def list_command(ctx: Context, sequences: bool, as_json: bool) -> None:
    """The registered sets: items and indexed fields."""
    with console.status("reading the eval-sets topic"):
        sets = run(list_eval_sets(ctx.settings(), sequences))
    if as_json:
        _print_json({"sets": [s.to_dict() for s in sets]})
        return
    if not sets:
        console.print("no evaluation sets registered")
        return
    table = Table(title="evaluation sets")
    for column in ("set", "items", "fields", *(["word sequences"] if sequences else [])):
        table.add_column(column, justify="right" if column in ("items", "word sequences") else "left")
    for s in sets:
        table.add_row(s.name, str(s.items), ", ".join(s.fields), *([str(s.sequences)] if sequences else []))
    Console().print(table)


@evalset.command("remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def remove(ctx: Context, name: str, as_json: bool) -> None:
    """Retract set NAME: a tombstone for each of its items, in one transaction."""
    with console.status(f"removing {name}"):
        retracted = run(remove_eval_set(ctx.settings(), name))
    if as_json:
        _print_json({"set": name, "retracted": retracted})
    else:
        console.print(f"evaluation set {name!r} removed: {retracted} items retracted")


COMMANDS = [evalset]
