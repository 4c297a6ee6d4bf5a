"""What every command of the ``distill`` command line shares: the settings from the global
flags, running a command's coroutine, and printing what it waits for."""

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import click
from pydantic import ValidationError

from streams.settings import DistillSettings


class Context:
    """Overrides from global flags; settings are built once, when a command asks."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = {k: v for k, v in overrides.items() if v is not None}

    def settings(self, **more: Any) -> DistillSettings:
        try:
            # Merged, not two ** (a command's own value, as the demo's prefix, may repeat a global flag).
            return DistillSettings(**(self.overrides | {k: v for k, v in more.items() if v is not None}))
        except ValidationError as exc:
            raise click.UsageError(f"invalid setting: {exc}") from None


def run(coro: Coroutine) -> Any:
    """Run a command's coroutine. Its errors are reported by the group (``DistillGroup``),
    once the command's progress display is gone, so the message is the last thing on stderr."""
    with quiet_client_logs():
        return asyncio.run(coro)


@contextmanager
def quiet_client_logs() -> Iterator[None]:
    """aiokafka logs every refused connection and failed fetch at ERROR ("Unable connect to
    ..."), before the command's own message or while a tail waits out a broker restart; the
    command says what matters itself. DISTILL_LOG_LEVEL=debug keeps them."""
    source = click.get_current_context(silent=True)
    source = source.find_object(Context) if source else None
    if source is not None and source.settings().log_level.lower() == "debug":
        yield
        return
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def say_on(console) -> Any:
    """A line printer for what a command waits for (stderr, so stdout stays the data)."""
    return lambda line: console.print(line, highlight=False, soft_wrap=True)
