"""``distill wait``: block until the worker has caught up with everything published so far.

It says (``say``) what it waits for whenever that changes: the input topics to be created
(nothing has run with the prefix yet), the worker to consume the inputs (and whether a
worker of the group runs at all), every partition's runs to be judged against the evaluation
sets registered now, the pair candidates, the pair windows to close, the dedup candidates. A broker
that stops answering once the wait is under way (a restart) is waited for, within the
same timeout; one that cannot be reached at the start ends the command at once.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaError

from schemas.codec import loads
from streams.broker import kafka_io
from streams.commands.evalset import evalset_version
from streams.errors import WaitTimeout
from streams.faust_app.tables import changelog_topic
from streams.settings import DistillSettings


async def _uncommitted(settings: DistillSettings, names: list[str], targets=None) -> dict:
    return await kafka_io.unconsumed(settings, settings.application_id, names, targets)


async def _open_windows(settings: DistillSettings) -> int:
    live, _ = await kafka_io.latest_values(settings, changelog_topic(settings, "pair_windows"))
    return sum(not loads(v)["window"]["closed"] for v in live.values())


class _Waiter:
    """Polls until a condition holds, within one deadline for all; says each new thing it waits for."""

    def __init__(self, settings: DistillSettings, timeout: float, poll: float, say: Callable[[str], None]) -> None:
        self.settings, self.timeout, self.poll, self.say = settings, timeout, poll, say
        self.deadline = time.monotonic() + timeout
        self.reached, self.lost = False, False

    async def ask(self, question: Callable[[], Awaitable[Any]]) -> Any:
        """The answer, once the broker gives one (it is waited for after the first answer)."""
        while True:
            try:
                answer = await question()
            except KafkaError:
                if not self.reached:
                    raise  # unreachable from the start: the group's message, at once
                if not self.lost:
                    self.say(f"lost the broker at {self.settings.bootstrap}; waiting for it to come back")
                self.lost = True
                self._check_deadline(f"the broker at {self.settings.bootstrap} did not answer again")
                await asyncio.sleep(self.poll)
                continue
            if self.lost:
                self.say(f"the broker at {self.settings.bootstrap} answers again")
            self.reached, self.lost = True, False
            return answer

    async def until_none(self, remaining: Callable[[], Awaitable[Any]], waiting_for: Callable[[Any], str],
                         gave_up: Callable[[Any], str], news: Callable[[Any], Any] = lambda left: None) -> None:
        """Poll ``remaining`` until it is empty; the line of ``waiting_for`` is said at the
        first wait and again whenever ``news`` changes (not at every count)."""
        said = object()
        while left := await self.ask(remaining):
            if news(left) != said:
                said = news(left)
                self.say(waiting_for(left))
            self._check_deadline(gave_up(left))
            await asyncio.sleep(self.poll)

    def _check_deadline(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise WaitTimeout(f"{what} after {self.timeout:.0f} s (--timeout).\n{self._action}")

    _action = "Operator action: check that `distill worker` runs with the same DISTILL_TOPIC_PREFIX and app id."


async def _workers(settings: DistillSettings) -> str:
    if await kafka_io.group_has_members(settings, settings.application_id):
        return ""
    return f"; no worker of group {settings.application_id} runs"


async def wait_caught_up(settings: DistillSettings, timeout: float, poll: float = 0.5,
                         say: Callable[[str], None] = lambda line: None) -> dict:
    """Inputs consumed, joined runs paired, and no window left open that could close."""
    waiter = _Waiter(settings, timeout, poll, say)
    inputs = [settings.topic("evidence"), settings.topic("scored-runs")]
    candidates = [settings.topic("pair-candidates")]
    await waiter.until_none(
        lambda: kafka_io.missing_topics(settings, inputs + candidates),
        lambda absent: f"waiting for the topics {', '.join(absent)} to be created (by `distill ingest` or "
                       f"`distill worker`; nothing has run with DISTILL_TOPIC_PREFIX={settings.topic_prefix!r} yet)",
        lambda absent: f"the topics {', '.join(absent)} were not created",
    )
    await _consumed(waiter, inputs, "input topics", "input messages")
    version = await waiter.ask(lambda: evalset_version(settings))
    await waiter.until_none(
        lambda: _judged_otherwise(settings, version),
        lambda left: f"waiting for the worker to judge the runs of {len(left)} partitions against the evaluation "
                     "sets registered now",
        lambda left: f"partitions {sorted(left)} not judged against the evaluation sets registered now",
    )
    await _consumed(waiter, candidates, "pair candidates", "joined runs")
    await waiter.until_none(
        lambda: _open_windows(settings),
        lambda n: f"waiting for {n} pair windows to close ({settings.pair_idle_close:.0f} s after their last run, "
                  "DISTILL_PAIR_IDLE_CLOSE)",
        lambda n: f"{n} pair windows still open; they close {settings.pair_idle_close:.0f} s after their last run "
                  "(DISTILL_PAIR_IDLE_CLOSE)",
    )
    await _consumed(waiter, [settings.topic("dedup-candidates")], "dedup candidates", "samples")
    return {"caught_up": True}


async def _consumed(waiter: _Waiter, names: list[str], label: str, what: str) -> None:
    """Until the worker's group has committed every message of ``names`` published so far."""
    settings = waiter.settings
    # Up to the ends of now (the candidates': of when what feeds them is consumed), not a moving target.
    targets = await waiter.ask(lambda: kafka_io.end_offsets(settings, names))

    async def remaining() -> dict:
        left = await _uncommitted(settings, names, targets)
        return {"left": sum(left.values()), "workers": await _workers(settings)} if left else {}

    await waiter.until_none(
        remaining,
        lambda left: f"waiting for the worker to consume the {label} ({left['left']} {what} to go{left['workers']})",
        lambda left: f"{label} consumed: not done ({left['left']} messages outstanding)",
        news=lambda left: left["workers"],
    )


async def _judged_otherwise(settings: DistillSettings, version: str) -> set[int]:
    """The partitions whose runs are not all judged against the evaluation sets of ``version``
    (their ``evalsets:{p}`` rows: ``streams.faust_app.agents.join_agent.Judged``)."""
    live, _ = await kafka_io.latest_values(settings, changelog_topic(settings, "stream_time"))
    judged = {p: loads(live.get(f"evalsets:{p}".encode(), b'{"version": "", "after": null}'))
              for p in range(settings.partitions)}
    return {p for p, row in judged.items() if row["version"] != version or row["after"] is not None}
