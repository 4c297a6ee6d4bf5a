"""`distill kafka up|down|status`: a real single-node Apache Kafka broker on 127.0.0.1."""

import json
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from streams.broker.localkafka.broker import LocalKafka
from streams.broker.localkafka.errors import LocalKafkaError

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def _fail(exc: LocalKafkaError) -> NoReturn:
    errors.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)  # paths stay copyable
    raise SystemExit(1)


def _broker() -> LocalKafka:
    try:
        return LocalKafka.from_env()
    except LocalKafkaError as exc:
        _fail(exc)


def _show_step(step: str) -> None:
    console.print(f"[dim]• {escape(step)}[/]")


@click.group("kafka")
def kafka_group() -> None:
    """Run a local Apache Kafka broker (KRaft, single node) on 127.0.0.1.

    Needs Java 17+ and Maven (jars are fetched once). Configured by DISTILL_KAFKA_HOME
    (default .local/kafka), DISTILL_KAFKA_PORT (9092) and DISTILL_KAFKA_CONTROLLER_PORT (9093).
    """


@kafka_group.command("up")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the broker to answer.")
def up(timeout: float) -> None:
    """Start the broker (no-op if it already runs) and wait until it answers."""
    broker = _broker()
    try:
        with console.status("starting Kafka…"):
            message = broker.up(timeout=timeout, progress=_show_step)
    except LocalKafkaError as exc:
        _fail(exc)
    console.print(f"[green]✓[/] {escape(message)}")


@kafka_group.command("down")
def down() -> None:
    """Stop the broker started by `up` (never any other process)."""
    try:
        message = _broker().down()
    except LocalKafkaError as exc:
        _fail(exc)
    console.print(escape(message))


@kafka_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(as_json: bool) -> None:
    """Show whether the broker runs, and where."""
    try:
        info = _broker().status()
    except LocalKafkaError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(info))
        return
    table = Table(show_header=False, box=None)
    state = "[green]running[/]" if info["running"] else "[yellow]stopped[/]"
    if info["running"] and not info["ready"]:
        state = "[yellow]running, not answering yet[/]"
    table.add_row("state", state)
    for key in ("pid", "bootstrap", "sasl_bootstrap", "home", "log", "kafka_version"):
        if info[key] is not None:
            table.add_row(key, escape(str(info[key])))
    console.print(table)
