"""The CLI and the worker over SASL_PLAINTEXT SCRAM-SHA-512, on a broker of this module alone.

A wrong password must end ``ingest`` and ``worker`` at once with a message that names
authentication, and the password must appear in no output, log or file.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streams.broker.localkafka.broker import LocalKafka
from tests.integration.conftest import write_jsonl
from tests.unit.records import make_evidence, make_provenance, make_score, make_score_provenance

pytestmark = pytest.mark.integration

USER = "distill"
FAILS_WITHIN = 20.0


def free_ports(count: int) -> list[int]:
    """Distinct free ports (held open together while chosen, so none repeats)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@pytest.fixture(scope="module")
def scram_kafka(broker, tmp_path_factory) -> Iterator[LocalKafka]:
    """A second broker with a SCRAM listener; its jars are those of the session broker."""
    home = tmp_path_factory.mktemp("scram-kafka")
    session = LocalKafka.from_env()
    if session.lib_dir.is_dir():
        (home / "lib").symlink_to(session.lib_dir, target_is_directory=True)  # no second Maven run
    port, controller_port, sasl_port = free_ports(3)
    kafka = LocalKafka(home, port, controller_port, sasl_port, USER, secrets.token_urlsafe(24))
    try:
        kafka.up(timeout=180)
        yield kafka
    finally:
        kafka.down()


def scram_env(kafka: LocalKafka, data_dir: Path, password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILL_")}
    return env | {
        "DISTILL_BOOTSTRAP": kafka.sasl_bootstrap,
        "DISTILL_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "DISTILL_SASL_MECHANISM": "SCRAM-SHA-512",
        "DISTILL_SASL_USERNAME": USER,
        "DISTILL_SASL_PASSWORD": password,
        "DISTILL_TOPIC_PREFIX": f"scram.{uuid.uuid4().hex[:8]}.",
        "DISTILL_DATA_DIR": str(data_dir),
        "DISTILL_WEB_ENABLED": "false",
        "DISTILL_PROCESSING_GUARANTEE": "at_least_once",
        "DISTILL_PAIR_IDLE_CLOSE": "2",
        "DISTILL_LOG_LEVEL": "info",
    }


def distill(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def small_input(folder: Path) -> tuple[Path, Path]:
    """One task, an accepted and a rejected run (one pair), and a line that is not JSON."""
    runs = [("scram-run-a", "accepted", "Kept the lock around the map lookup only.", "2026-01-01T10:00:00Z"),
            ("scram-run-b", "rejected", "Rewrote the scheduler without tests.", "2026-01-01T10:05:00Z")]
    evidence = [
        make_evidence(run_id=run_id, task_id="scram-task", text=text, provenance=make_provenance(sig_hash=f"e-{run_id}"))
        for run_id, _, text, _ in runs
    ]
    scores = [
        make_score(evidence_run_id=run_id, evidence_task_id="scram-task", category=category, scored_at=scored_at,
                   provenance=make_score_provenance(sig_hash=f"s-{run_id}", recorded_at=scored_at))
        for run_id, category, _, scored_at in runs
    ]
    return write_jsonl(folder / "evidence.jsonl", [*evidence, b"not json"]), write_jsonl(folder / "scores.jsonl", scores)


def assert_secret_absent(password: str, texts: list[str], folder: Path) -> None:
    for text in texts:
        assert password not in text
    leaked = [path for path in folder.rglob("*") if path.is_file() and password.encode() in path.read_bytes()]
    assert not leaked, leaked


def test_cli_and_worker_run_end_to_end_over_scram(scram_kafka, tmp_path):
    password = scram_kafka.scram_password
    data_dir = tmp_path / "data"
    env = scram_env(scram_kafka, data_dir, password)
    evidence, scores = small_input(tmp_path / "in")
    outputs = []

    ingested = distill(env, "ingest", "--evidence", str(evidence), "--scores", str(scores), "--json")
    outputs += [ingested.stdout, ingested.stderr]
    assert ingested.returncode == 0, ingested.stderr
    assert orjson.loads(ingested.stdout)["published"] == {"evidence": 3, "scored-runs": 2}

    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "streams", "worker"], env=env, stdout=log, stderr=log)
        try:
            waited = distill(env, "wait", "--timeout", "120")
            outputs += [waited.stdout, waited.stderr]
            assert waited.returncode == 0, waited.stderr + log_path.read_text()[-3000:]
            exported = distill(env, "export", "--out", str(data_dir / "export"), "--json")
            stats = distill(env, "stats", "--json")
            outputs += [exported.stdout, exported.stderr, stats.stdout, stats.stderr]
            assert worker.poll() is None, log_path.read_text()[-3000:]
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)

    assert exported.returncode == 0 and stats.returncode == 0, exported.stderr + stats.stderr
    counts = {name: info["count"] for name, info in orjson.loads(exported.stdout)["files"].items()}
    assert counts == {"rag/samples.jsonl": 1, "sft/samples.jsonl": 1, "preference/chosen_rejected.jsonl": 1,
                      "quarantine/records.jsonl": 3}
    pair = orjson.loads((data_dir / "export" / "preference" / "chosen_rejected.jsonl").read_bytes())
    assert (pair["chosen_run_id"], pair["rejected_run_id"]) == ("scram-run-a", "scram-run-b")
    figures = orjson.loads(stats.stdout)
    assert figures["balanced"] and figures["joined"] == 2 and figures["invalid_input_messages"] == 1
    assert_secret_absent(password, [*outputs, log_path.read_text()], tmp_path)


@pytest.mark.parametrize("command", ["ingest", "worker"])
def test_a_wrong_password_fails_at_once_naming_authentication(scram_kafka, tmp_path, command):
    wrong = "wrong-" + secrets.token_urlsafe(12)
    env = scram_env(scram_kafka, tmp_path / "data", wrong)
    evidence, scores = small_input(tmp_path / "in")
    args = ["ingest", "--evidence", str(evidence), "--scores", str(scores)] if command == "ingest" else ["worker"]

    started = time.monotonic()
    result = distill(env, *args, timeout=FAILS_WITHIN + 40)
    elapsed = time.monotonic() - started

    assert result.returncode != 0
    assert elapsed < FAILS_WITHIN, f"{command} took {elapsed:.1f} s to give up"
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error and "authenticat" in error[0].lower() and USER in error[0], result.stderr
    assert "DISTILL_SASL_PASSWORD" in result.stderr  # what to do
    assert "Traceback" not in result.stderr
    for secret in (wrong, scram_kafka.scram_password):
        assert_secret_absent(secret, [result.stdout, result.stderr], tmp_path)
