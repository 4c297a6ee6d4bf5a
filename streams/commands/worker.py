"""Running the Faust worker, in this process or as a child, and rebuilding from the inputs."""

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import faust
import uvloop
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.broker import kafka_io
from streams.broker.preflight import check_connection
from streams.broker.topics import INPUT_TOPICS, INTERNAL_TOPICS, OUTPUT_TOPICS
from streams.commands.wait import wait_caught_up
from streams.errors import DistillError
from streams.faust_app import log_redaction, memory
from streams.faust_app.build import build_pipeline
from streams.faust_app.tables import RETIRED_TABLES, TABLE_NAMES, changelog_topic
from streams.faust_fixes import faust_compat
from streams.settings import DistillSettings


def run_worker(settings: DistillSettings) -> None:
    """Run until SIGINT/SIGTERM; Faust commits and closes the tables on the way out.

    The secret rules are loaded first (a rule that cannot be used ends the command with its id
    and why), then the connection is checked, so a refused password or an unreachable broker
    ends the command at once with a message that names the cause.
    """
    faust_compat.check()  # refuses a Faust the patches were not written for, before anything starts
    # uvloop: asyncio's own loop was a third of the worker's busy time in profiles. The policy
    # too, so the loop of Faust's consumer thread (asyncio.new_event_loop) is one as well.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    memory.tune_garbage_collector()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    pipeline = build_pipeline(settings)  # a secret rule it cannot use stops the worker here, before it connects
    if pipeline.scanner is not None:
        log_redaction.install(pipeline.scanner)
    loop.run_until_complete(check_connection(settings))
    loop.run_until_complete(kafka_io.ensure_topics(settings))
    loop.run_until_complete(ensure_changelogs(settings))
    loop.run_until_complete(pipeline.evalsets.load())
    memory.freeze_startup_objects()
    worker = faust.Worker(pipeline.app, loop=loop, loglevel=settings.log_level.upper(), quiet=True)
    # Faust's start-up spinner sets the root logger to DEBUG for good (so each record can spin
    # it): every debug call of Faust and aiokafka then builds a record, ~7% of the worker's CPU.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    finally:
        if pipeline.restart_reason is not None:
            # Same process id and settings (the environment is kept): a supervisor sees no exit.
            logging.getLogger(__name__).warning("%s", pipeline.restart_reason)
            os.execv(sys.executable, [sys.executable, "-m", "streams", *sys.argv[1:]])


async def ensure_changelogs(settings: DistillSettings, timeout: float = 30.0) -> None:
    """Create the tables' changelog topics before Faust starts, and wait until the broker lists them.

    Faust creates them itself and subscribes right after; on a fresh broker its consumer
    can take a metadata snapshot that lacks some, and every agent using such a table then
    crashes with PartitionsMismatch ("the changelog topic has 0 partitions").
    """
    names = [changelog_topic(settings, table) for table in TABLE_NAMES]
    async with kafka_io.started(AIOKafkaAdminClient(**kafka_io.client_options(settings))) as admin:
        missing = [name for name in names if name not in set(await admin.list_topics())]
        if missing:  # per-topic errors (another worker made one first) come back in the response
            await admin.create_topics([
                NewTopic(name, settings.partitions, settings.replication_factor, topic_configs={"cleanup.policy": "compact"})
                for name in missing
            ])
        for _ in range(int(timeout / 0.25)):
            described = await admin.describe_topics(names)
            if len(described) == len(names) and all(d["partitions"] and not d.get("error_code") for d in described):
                return
            await asyncio.sleep(0.25)
    raise DistillError(
        f"the changelog topics {names} did not appear within {timeout:.0f} s.\n"
        "Operator action: check that this user may create topics, or create them (compacted, "
        "DISTILL_PARTITIONS partitions) by hand."
    )


def settings_env(settings: DistillSettings) -> dict[str, str]:
    """The settings as DISTILL_* variables, for a child worker (the secret included, never printed)."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        secret = getattr(value, "get_secret_value", None)
        env[f"DISTILL_{name.upper()}"] = str(secret() if secret else value)
    return env


@asynccontextmanager
async def child_worker(settings: DistillSettings, log_path: Path | None = None):
    """A ``distill worker`` subprocess for the duration of the block, stopped cleanly after."""
    async with worker_subprocess(sys.executable, settings_env(settings),
                                 log_path or settings.data_dir / "worker.log") as process:
        yield process


@asynccontextmanager
async def worker_subprocess(python: str | Path, env: dict[str, str], log_path: Path, cwd: Path | None = None):
    """``python -m streams worker`` with its output appended to ``log_path``; SIGTERM after
    the block (what an operator's stop sends), a kill if it has not stopped a minute later."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen([str(python), "-m", "streams", "worker"], env=env, cwd=cwd, stdout=log, stderr=log)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 60)
            except subprocess.TimeoutExpired:
                process.kill()


async def reset_outputs(settings: DistillSettings) -> None:
    """Delete every output, the internal topics and the local state; rewind the group."""
    doomed = [settings.topic(s.name) for s in (*OUTPUT_TOPICS, *INTERNAL_TOPICS)]
    doomed += [changelog_topic(settings, t) for t in (*TABLE_NAMES, *RETIRED_TABLES)]
    await kafka_io.delete_topics(settings, doomed)
    await kafka_io.wait_topics_gone(settings, doomed)
    shutil.rmtree(settings.state_dir, ignore_errors=True)
    await kafka_io.ensure_topics(settings)
    ends = await kafka_io.end_offsets(settings, [settings.topic(s.name) for s in INPUT_TOPICS])
    await kafka_io.rewind_group(settings, settings.application_id, [TopicPartition(tp.topic, tp.partition) for tp in ends])


async def replay(settings: DistillSettings, timeout: float, say: Callable[[str], None] = lambda line: None) -> None:
    """Rebuild every output from the input topics (the worker must not be running)."""
    await kafka_io.require_topics(settings, [settings.topic(s.name) for s in INPUT_TOPICS])
    if await kafka_io.group_has_members(settings, settings.application_id):
        raise DistillError(
            f"a worker of group {settings.application_id!r} is running.\n"
            "Operator action: stop it (Ctrl-C or SIGTERM), then run `distill replay` again."
        )
    await reset_outputs(settings)
    logging.getLogger(__name__).info("outputs reset; rebuilding")
    say(f"outputs reset; a worker rebuilds them (its log: {settings.data_dir / 'worker.log'})")
    async with child_worker(settings):
        await wait_caught_up(settings, timeout, say=say)
