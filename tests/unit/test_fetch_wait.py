"""The broker holds a worker's stream fetch at most DISTILL_FETCH_MAX_WAIT, until DISTILL_FETCH_MIN_BYTES
are there (streams/faust_fixes/fetch_wait.py)."""

import pytest

from streams.faust_app.build import build_pipeline
from streams.settings import DistillSettings


@pytest.mark.parametrize("setting, chosen, attribute, expected", [
    ("fetch_max_wait", None, "_fetch_max_wait_ms", 20),
    ("fetch_max_wait", 0.05, "_fetch_max_wait_ms", 50),
    ("fetch_max_wait", 1.5, "_fetch_max_wait_ms", 1500),
    ("fetch_min_bytes", None, "_fetch_min_bytes", 32768),
    ("fetch_min_bytes", 1, "_fetch_min_bytes", 1),
    ("fetch_min_bytes", 1 << 20, "_fetch_min_bytes", 1 << 20),
])
async def test_the_stream_consumer_asks_the_broker_for_the_configured_wait_and_bytes(
        tmp_path, setting, chosen, attribute, expected):
    settings = DistillSettings(data_dir=tmp_path, web_enabled=False, **({} if chosen is None else {setting: chosen}))
    app = build_pipeline(settings).app
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert getattr(consumer, attribute) == expected
