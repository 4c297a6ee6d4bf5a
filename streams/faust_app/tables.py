"""RocksDB-backed tables, each restored from its changelog topic on start or rebalance.

Keys and values are raw bytes (JSON via ``schemas.codec``), so the CLI can read a
table's changelog topic without Faust. Tables of the join share the partitioning of
the input topics; tables of pairing share that of ``pair-candidates``, the dedup groups
that of ``dedup-candidates`` (all co-partitioned: partition P of each is on one worker).
"""

from dataclasses import dataclass

import faust

from streams.faust_fixes.state_store import table_options
from streams.settings import DistillSettings


@dataclass(frozen=True)
class Tables:
    runs: faust.Table  # run_id -> RunState
    # "join:{p}" / "pair:{p}" / "evidence:{p}" -> a partition's clocks; "evalsets:{p}" -> the
    # version of the evaluation sets its runs were last judged against
    stream_time: faust.Table
    pair_windows: faust.Table  # "{task_id}|{window start}" -> WindowRow (streams/faust_app/agents/pair_agent.py)
    pair_run_window: faust.Table  # run_id -> "late" if refused as late (earlier versions: the key of every run's window)
    dedup: faust.Table  # "{kind}:{content key}" -> DedupGroup (streams/rules/dedup.py), every live candidate


TABLE_NAMES = ("runs", "stream_time", "pair_windows", "pair_run_window", "dedup")
# Tables of earlier versions: their changelogs are left alone by a worker, deleted by a reset.
# (``open_windows``: the open windows are an index in memory now, rebuilt from ``pair_windows``.)
RETIRED_TABLES = ("pending_joins", "open_windows")


def changelog_topic(settings: DistillSettings, table: str) -> str:
    """The changelog topic Faust writes a table to (read by ``distill stats``)."""
    return f"{settings.application_id}-{table}-changelog"


def declare_tables(app: faust.App, settings: DistillSettings) -> Tables:
    def table(name: str) -> faust.Table:
        return app.Table(
            name,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            options=table_options(settings.state_memory_mib),
            help=Tables.__dataclass_fields__[name].type.__doc__,
        )

    return Tables(**{name: table(name) for name in TABLE_NAMES})
