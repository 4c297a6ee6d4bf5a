"""``distill quarantine tail``."""

import click
from rich.console import Console

from streams.cli.context import Context, run, say_on
from streams.commands.quarantine_tail import format_line, tail

COMMANDS = []
errors = Console(stderr=True)


@click.group("quarantine")
def quarantine() -> None:
    """Look into the quarantine (the dead-letter topic)."""


@quarantine.command("tail")
@click.option("--reason", "reasons", multiple=True, help="Only this reason (repeatable).")
@click.option("--stage", help="Only this stage (input, join, rag, sft, preference).")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record instead of now.")
@click.option("--follow", is_flag=True,
              help="Keep waiting for new records (Ctrl-C stops): also for the topic to be created, for "
                   "partitions added and across a broker restart.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record a line, for scripts.")
@click.pass_obj
def tail_command(ctx: Context, reasons: tuple[str, ...], stage: str | None, from_beginning: bool, follow: bool, as_json: bool) -> None:
    """Show quarantine records, one line each: stage, reason, run id, source, first error.

    Without --follow a quarantine topic that does not exist yet ends the command with exit 1.
    What a following tail waits for is said on stderr; records go to stdout."""

    def show(record: dict, raw: bytes) -> None:
        click.echo(raw.decode() if as_json else format_line(record))

    try:
        run(tail(ctx.settings(), set(reasons), stage, from_beginning, follow, show, say=say_on(errors)))
    except KeyboardInterrupt:
        pass


COMMANDS.append(quarantine)
