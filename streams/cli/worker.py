"""``distill worker`` and ``distill replay``."""

import click
from rich.console import Console

from streams.cli.context import Context, run, say_on
from streams.commands.worker import replay, run_worker

GATE_FLAGS = [
    click.option("--include-partial/--no-include-partial", default=None,
                 help="Let partially_accepted runs into SFT [env DISTILL_INCLUDE_PARTIAL]."),
    click.option("--include-review/--no-include-review", default=None,
                 help="Let needs_human_review runs into RAG [env DISTILL_INCLUDE_REVIEW]."),
    click.option("--join-timeout", type=float, help="Seconds of stream time a score waits for evidence [3600]."),
    click.option("--pair-window", type=float, help="Seconds of a task's pairing window [86400]."),
    click.option("--pair-grace", type=float, help="Seconds of stream time a window stays open past its end [600]."),
    click.option("--pair-idle-close", type=float, help="Wall-clock seconds after which an idle window closes [60]."),
    click.option("--max-pairs-per-task", type=int, help="Most pairs one task window yields [5]."),
]


def gate_flags(func):
    for flag in reversed(GATE_FLAGS):
        func = flag(func)
    return func


@click.command("worker")
@gate_flags
@click.option("--log-level", help="Faust log level [warning].")
@click.pass_obj
def worker(ctx: Context, **flags) -> None:
    """Run the stream processor until interrupted (Ctrl-C or SIGTERM stop it cleanly)."""
    run_worker(ctx.settings(**flags))


@click.command("replay")
@gate_flags
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait for the rebuild.")
@click.pass_obj
def replay_command(ctx: Context, timeout: float, **flags) -> None:
    """Rebuild every output from the input topics with fresh state (stop the worker first).

    Output topics and worker state are deleted and built anew; changed options apply to
    all history. Afterwards an export equals one from an undisturbed run. Exit 1 when
    the input topics do not exist (nothing to replay).
    """
    run(replay(ctx.settings(**flags), timeout, say=say_on(Console(stderr=True))))


COMMANDS = [worker, replay_command]
