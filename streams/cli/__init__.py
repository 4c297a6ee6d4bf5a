"""The ``distill`` command line: it parses arguments and calls library functions, nothing more."""

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from aiokafka.errors import KafkaError

from streams.broker.preflight import check_connection
from streams.cli import data, demo, evalset, quarantine, worker
from streams.cli.context import Context
from streams.cli.kafka import kafka_group
from streams.errors import BrokerUnavailable, DistillError


@contextmanager
def reported_errors() -> Iterator[None]:
    """A ``DistillError``, or a Kafka client error explained by a preflight connection,
    becomes one message on stderr and exit status 1 (no traceback)."""
    try:
        try:
            yield
        except KafkaError as exc:
            raise _explain(exc) from exc
    except DistillError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _explain(exc: KafkaError) -> DistillError:
    """aiokafka says only "Unable to bootstrap"; one plain connection tells what was wrong."""
    source = click.get_current_context(silent=True)
    source = source.find_object(Context) if source else None
    if source is not None:
        try:
            asyncio.run(check_connection(source.settings()))
        except DistillError as explained:
            return explained
    return BrokerUnavailable(
        f"Kafka: {type(exc).__name__}: {exc}\n"
        "Operator action: check the broker (`distill kafka status`) and the DISTILL_BOOTSTRAP / "
        "DISTILL_SECURITY_PROTOCOL / DISTILL_SASL_* settings, then run the command again."
    )


class DistillGroup(click.Group):
    """Every command's errors reported in one place, after the command's own ``with`` blocks
    (progress bars, spinners) have closed."""

    def invoke(self, ctx: click.Context) -> Any:
        with reported_errors():
            return super().invoke(ctx)


@click.group(cls=DistillGroup, context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": None})
@click.option("--bootstrap", help="Kafka bootstrap servers [env DISTILL_BOOTSTRAP, default localhost:9092].")
@click.option("--topic-prefix", help="Prefix of every topic [env DISTILL_TOPIC_PREFIX, default 'distill.'].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Worker state folder [env DISTILL_DATA_DIR].")
@click.pass_context
def main(ctx: click.Context, bootstrap: str | None, topic_prefix: str | None, data_dir: Path | None) -> None:
    """distill-streams: scored LLM agent runs in, clean RAG, SFT and preference datasets out.

    Every setting also comes from a DISTILL_* environment variable (see the README).
    Typical session: `distill kafka up`, `distill worker &`, `distill ingest --evidence E
    --scores S`, `distill wait`, `distill export --out X`, `distill stats`.
    """
    ctx.obj = Context({"bootstrap": bootstrap, "topic_prefix": topic_prefix, "data_dir": data_dir})


main.add_command(kafka_group)
for module in (worker, data, evalset, quarantine, demo):
    for command in module.COMMANDS:
        main.add_command(command)
