"""A real Kafka 4.1.1 broker started by LocalKafka on ports of its own (29092-29094).

Needs java 17+ and mvn (jars come from the local Maven cache or the network); skipped
when either is missing. Tests run in file order: the last one stops the broker.
"""

import asyncio
import logging
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.broker.localkafka.broker import LocalKafka

pytestmark = pytest.mark.integration

PORT, CONTROLLER_PORT, SASL_PORT = 29092, 29093, 29094
USER = "distill-test"
PASSWORD = secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    missing = [tool for tool in ("java", "mvn") if not shutil.which(tool)]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed")
    home: Path = tmp_path_factory.mktemp("kafka")
    broker = LocalKafka(home, PORT, CONTROLLER_PORT, SASL_PORT, USER, PASSWORD)
    try:
        broker.up(timeout=180)
        yield broker
    finally:
        broker.down()


def scram_client(**overrides: object) -> dict[str, object]:
    return {
        "bootstrap_servers": f"127.0.0.1:{SASL_PORT}",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD,
        "request_timeout_ms": 10_000,
        **overrides,
    }


async def round_trip(topic: str, value: bytes, **client: object) -> list[bytes]:
    producer = AIOKafkaProducer(**client)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", enable_auto_commit=False, **client)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
        return [message.value for messages in batch.values() for message in messages]
    finally:
        await consumer.stop()


def test_up_is_idempotent(kafka: LocalKafka) -> None:
    pid = kafka.status()["pid"]
    started = time.monotonic()
    assert kafka.up() == f"Kafka 4.1.1 already running at 127.0.0.1:{PORT} (pid {pid})"
    assert time.monotonic() - started < 5
    status = kafka.status()
    assert status["running"] and status["ready"] and status["pid"] == pid


async def test_plaintext_round_trip(kafka: LocalKafka) -> None:
    assert kafka.status()["ready"]  # also from inside a running event loop
    assert await round_trip("lk-plain", b"hello", bootstrap_servers=kafka.bootstrap) == [b"hello"]


async def test_scram_with_the_right_password(kafka: LocalKafka) -> None:
    assert await round_trip("lk-scram", b"secret hello", **scram_client()) == [b"secret hello"]


async def test_scram_with_a_wrong_password_fails_fast(
    kafka: LocalKafka, caplog: pytest.LogCaptureFixture
) -> None:
    producer = AIOKafkaProducer(**scram_client(sasl_plain_password="not-" + PASSWORD))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaError):
        try:
            await asyncio.wait_for(producer.start(), 15)
        finally:
            await producer.stop()
    assert time.monotonic() - started < 10
    assert "Authentication failed" in caplog.text


def test_password_stays_out_of_logs_and_command_lines(kafka: LocalKafka) -> None:
    for path in (kafka.log_file, kafka.out_file, kafka.server_properties):
        assert PASSWORD not in path.read_text()
    assert PASSWORD not in Path(f"/proc/{kafka.status()['pid']}/cmdline").read_text()
    assert not (kafka.home / "format.args").exists()


def test_down_stops_the_broker(kafka: LocalKafka) -> None:
    pid = kafka.status()["pid"]
    assert kafka.down() == f"Kafka (pid {pid}) stopped"
    assert not Path(f"/proc/{pid}").exists()  # exited and reaped
    assert kafka.status()["running"] is False
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", PORT)) != 0
    assert kafka.down() == "Kafka is not running"
