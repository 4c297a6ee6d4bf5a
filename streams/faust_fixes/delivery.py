"""Faust's consumer hands each fetched message to the conductor inside ``Service.wait_first``
(``Consumer._drain_messages``), so that a rebalance (``suspend_flow``) can cut short a
delivery that waits for room in a full stream buffer. That race costs four tasks and an
``asyncio.wait`` for every message: ~60 µs, measured, about a tenth of the worker's CPU.

Almost every delivery waits for nothing. Here it runs inline, up to its first wait; only a
delivery that does wait is raced against the suspension, from where it stopped, as Faust
races it. A delivery is not started at all when the flow is already suspended (Faust's
race, which the suspension wins at once, then cancels the delivery before it ran).
"""

from collections.abc import Coroutine, Generator
from typing import Any

from faust.transport.consumer import Consumer
from mode.services import WaitResults

_faust_wait_first = Consumer.wait_first


class Started:
    """A coroutine already run up to its first wait, awaitable (by a task) from there."""

    def __init__(self, coro: Coroutine, waiting_on: Any) -> None:
        self._coro, self._waiting_on = coro, waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # a cancellation included: the coroutine decides
                resume = coro.throw
                argument: Any = exc
            else:
                resume, argument = coro.send, sent
            try:
                waiting_on = resume(argument)
            except StopIteration as done:
                return done.value


def _is_suspension_wait(consumer: Consumer, awaitable: Any) -> bool:
    frame = getattr(awaitable, "cr_frame", None)
    return frame is not None and frame.f_locals.get("self") is consumer.suspend_flow


async def wait_first(self: Consumer, *coros: Any, timeout: Any = None) -> WaitResults:
    if len(coros) != 2 or timeout is not None or not _is_suspension_wait(self, coros[1]):
        return await _faust_wait_first(self, *coros, timeout=timeout)
    delivery, suspension = coros
    if self.suspend_flow.is_set():
        delivery.close()
        return await _faust_wait_first(self, suspension)
    suspension.close()  # not awaited on the inline path: closed, so it is not reported as forgotten
    try:
        waiting_on = delivery.send(None)
    except StopIteration as done:
        return WaitResults([delivery], [done.value], False)
    return await _faust_wait_first(self, Started(delivery, waiting_on), self.suspend_flow.wait())


def install() -> None:
    Consumer.wait_first = wait_first
