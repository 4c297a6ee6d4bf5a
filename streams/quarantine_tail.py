"""Reading the quarantine topic as it grows, filtered by the headers (no value parsed to skip)."""

import asyncio
from collections.abc import Callable

from schemas.codec import loads
from streams import kafka_io
from streams.settings import DistillSettings


def format_line(record: dict) -> str:
    source = record["source"]
    where = f"{source['topic']}:{source['partition']}:{source['offset']}"
    return (f"{record['stage']:<10} {record['reason']:<26} run={record['run_id'] or '-'} "
            f"at={where} {record['errors'][0]}")


async def tail(
    settings: DistillSettings, reasons: set[str], stage: str | None, from_beginning: bool, follow: bool,
    show: Callable[[dict, bytes], None],
) -> int:
    name = settings.topic("quarantine")
    ends = await kafka_io.end_offsets(settings, [name])
    reader = kafka_io.consumer(settings)
    await reader.start()
    shown = 0
    try:
        reader.assign(list(ends))
        if from_beginning:
            await reader.seek_to_beginning(*ends)
        else:
            for tp, end in ends.items():
                reader.seek(tp, end)
        while True:
            batch = await reader.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    headers = {k: v.decode() for k, v in message.headers or ()}
                    if reasons and headers.get("reason") not in reasons:
                        continue
                    if stage and headers.get("stage") != stage:
                        continue
                    show(loads(message.value), message.value)
                    shown += 1
            if not follow and all([await reader.position(tp) >= end for tp, end in ends.items()]):
                return shown
            await asyncio.sleep(0)
    finally:
        await reader.stop()
