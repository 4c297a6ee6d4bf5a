"""What the work-arounds that act on a running worker read and set on its pipeline.

The pipeline (``streams.faust_app.pipeline.Pipeline``) belongs to the layer above, which
builds it and registers these work-arounds on it; they see it through this protocol, so
imports point down only.
"""

import asyncio
from typing import Protocol

import faust

from streams.settings import DistillSettings


class RunningWorker(Protocol):
    settings: DistillSettings
    app: faust.App
    # Partitions whose first event since the last assignment was checked (skip_guard).
    delivery_checked: set
    # Set by a join batch that read its input to the end: commit soon (prompt_commit).
    commit_wanted: asyncio.Event | None
    # Set when the worker must start over in a new process (skip_guard, restore_guard).
    restart_reason: Exception | None

    def read_to_end(self, topic: str, partition: int, next_offset: int, slack: int = 0) -> bool: ...
