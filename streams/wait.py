"""``distill wait``: block until the worker has caught up with everything published so far."""

import asyncio
import time

from schemas.codec import loads
from streams import kafka_io
from streams.errors import WaitTimeout
from streams.settings import DistillSettings
from streams.tables import changelog_topic


async def _uncommitted(settings: DistillSettings, names: list[str], targets=None) -> dict:
    return await kafka_io.unconsumed(settings, settings.application_id, names, targets)


async def _open_windows(settings: DistillSettings) -> int:
    live, _ = await kafka_io.latest_values(settings, changelog_topic(settings, "pair_windows"))
    return sum(not loads(v)["window"]["closed"] for v in live.values())


async def wait_caught_up(settings: DistillSettings, timeout: float, poll: float = 0.5) -> dict:
    """Inputs consumed, joined runs paired, and no window left open that could close."""
    deadline = time.monotonic() + timeout
    inputs = [settings.topic("evidence"), settings.topic("scored-runs")]
    stages = [
        ("input topics consumed", lambda: _uncommitted(settings, inputs, input_targets)),
        ("pair candidates consumed", lambda: _uncommitted(settings, [settings.topic("pair-candidates")], pair_targets)),
    ]
    input_targets = await kafka_io.end_offsets(settings, inputs)
    pair_targets = None
    for label, remaining in stages:
        while left := await remaining():
            if time.monotonic() > deadline:
                raise WaitTimeout(
                    f"{label}: not done after {timeout:.0f} s ({sum(left.values())} messages outstanding).\n"
                    "Operator action: check that `distill worker` runs with the same DISTILL_TOPIC_PREFIX and app id."
                )
            await asyncio.sleep(poll)
        if pair_targets is None:
            pair_targets = await kafka_io.end_offsets(settings, [settings.topic("pair-candidates")])
    while (open_windows := await _open_windows(settings)) > 0:
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"{open_windows} pair windows still open after {timeout:.0f} s; they close "
                f"{settings.pair_idle_close:.0f} s after their last run (DISTILL_PAIR_IDLE_CLOSE)."
            )
        await asyncio.sleep(poll)
    return {"caught_up": True}
