"""The SASL password reaches the Kafka clients and nothing else: no repr, dump, message or log."""

import logging
import secrets
import socket

import pytest
from click.testing import CliRunner

from streams.broker.kafka_io import client_options, faust_credentials
from streams.broker.preflight import check_connection
from streams.cli import main
from streams.errors import BrokerUnavailable
from streams.settings import DistillSettings

PASSWORD = "pw-" + secrets.token_urlsafe(18)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


@pytest.fixture
def settings(tmp_path) -> DistillSettings:
    return DistillSettings(
        bootstrap=f"127.0.0.1:{closed_port()}", data_dir=tmp_path, security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512", sasl_username="distill", sasl_password=PASSWORD,
    )


def test_settings_never_show_the_password(settings):
    for text in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump()),
                 str(settings.model_dump(mode="json"))):
        assert PASSWORD not in text
    assert "**" in repr(settings)  # masked, not left out: a reader sees that one is set


def test_the_clients_get_the_password_but_do_not_show_it(settings):
    options = client_options(settings)
    assert options["sasl_plain_password"] == PASSWORD  # aiokafka needs it in clear
    assert options["sasl_plain_username"] == "distill" and options["security_protocol"] == "SASL_PLAINTEXT"
    credentials = faust_credentials(settings)
    assert credentials.password == PASSWORD
    assert PASSWORD not in repr(credentials) and PASSWORD not in str(credentials)


async def test_a_failed_connection_names_the_cause_without_the_password(settings):
    with pytest.raises(BrokerUnavailable) as failure:
        await check_connection(settings, timeout=5)
    assert "cannot reach Kafka" in str(failure.value) and "Operator action" in str(failure.value)
    assert PASSWORD not in str(failure.value)


def test_a_cli_command_that_cannot_connect_prints_no_password(settings, caplog, monkeypatch):
    monkeypatch.setenv("DISTILL_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("DISTILL_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("DISTILL_SASL_USERNAME", "distill")
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(main, ["--bootstrap", settings.bootstrap, "--data-dir", str(settings.data_dir), "stats"])
    assert result.exit_code == 1, result.output
    assert "error: cannot reach Kafka" in result.output
    assert PASSWORD not in result.output
    assert PASSWORD not in caplog.text
