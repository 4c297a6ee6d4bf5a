"""Guards of the Kafka edge that need no broker."""

import pytest

from streams.broker import kafka_io
from streams.settings import DistillSettings


async def test_deleting_by_an_empty_prefix_is_refused_before_any_connection(tmp_path):
    # Port 9 (discard) on loopback: nothing answers, so reaching the admin client would fail differently.
    settings = DistillSettings(data_dir=tmp_path, topic_prefix="", bootstrap="127.0.0.1:9")
    with pytest.raises(ValueError, match="DISTILL_TOPIC_PREFIX is empty"):
        await kafka_io.delete_prefixed(settings)
