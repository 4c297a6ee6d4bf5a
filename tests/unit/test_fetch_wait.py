"""The broker holds a worker's stream fetch at most DISTILL_FETCH_MAX_WAIT, until DISTILL_FETCH_MIN_BYTES
are there (streams/faust_fixes/fetch_wait.py)."""

import pytest

from streams.faust_app.build import build_pipeline
from streams.settings import DistillSettings


@pytest.mark.parametrize("seconds, expected_ms", [(None, 20), (0.05, 50), (1.5, 1500)])
async def test_the_stream_consumer_asks_the_broker_to_wait_the_configured_time(tmp_path, seconds, expected_ms):
    chosen = {} if seconds is None else {"fetch_max_wait": seconds}
    app = build_pipeline(DistillSettings(data_dir=tmp_path, web_enabled=False, **chosen)).app
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == expected_ms


@pytest.mark.parametrize("min_bytes, expected", [(None, 32768), (1, 1), (1 << 20, 1 << 20)])
async def test_the_stream_consumer_asks_the_broker_for_the_configured_bytes(tmp_path, min_bytes, expected):
    chosen = {} if min_bytes is None else {"fetch_min_bytes": min_bytes}
    app = build_pipeline(DistillSettings(data_dir=tmp_path, web_enabled=False, **chosen)).app
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert consumer._fetch_min_bytes == expected
