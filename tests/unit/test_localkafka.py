"""The local broker manager without a broker: config files, tool checks, safety of down().

`up()` is driven end to end by fake `java` and `mvn` scripts on PATH, which record how
they were called, so the orchestration (assembly once, format via an @file, private
files, error on a dying broker) is checked without Java or network.
"""

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streams.broker.localkafka import broker as lk
from streams.broker.localkafka.broker import LocalKafka
from streams.broker.localkafka.errors import (
    BrokerStartError,
    ConfigError,
    FormatError,
    LocalKafkaError,
    MissingToolError,
)
from streams.broker.localkafka.home import KAFKA_VERSION

PASSWORD = "pa55=word+/x"


def parse(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sasl_broker(home: Path) -> LocalKafka:
    return LocalKafka(home, free_port(), free_port(), free_port(), "alice", PASSWORD)


# -- configuration --------------------------------------------------------------------


def test_plaintext_server_properties(tmp_path: Path) -> None:
    props = parse(LocalKafka(tmp_path / "k", 19500, 19501).render_server_properties())
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19501"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19500,CONTROLLER://127.0.0.1:19501"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19500"
    assert props["log.dirs"] == str((tmp_path / "k" / "data").resolve())
    assert props["auto.create.topics.enable"] == "true"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["file.delete.delay.ms"] == "1000"
    assert not any(key.startswith("sasl") or "sasl" in value.lower() for key, value in props.items())


def test_sasl_server_properties_hold_no_password(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path, 19500, 19501, 19502, "alice", PASSWORD)
    text = kafka.render_server_properties()
    props = parse(text)
    assert props["listeners"].endswith(",SASL_PLAINTEXT://127.0.0.1:19502")
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19500,SASL_PLAINTEXT://127.0.0.1:19502"
    assert "SASL_PLAINTEXT:SASL_PLAINTEXT" in props["listener.security.protocol.map"]
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    jaas = props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    assert jaas == "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    assert PASSWORD not in text
    assert PASSWORD not in repr(kafka)
    assert kafka.sasl_bootstrap == "127.0.0.1:19502"


def test_log4j_writes_under_home(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path)
    assert f"fileName = {tmp_path.resolve()}/logs/server.log" in kafka.render_log4j_properties()


def test_home_is_absolute_and_bootstrap_is_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    kafka = LocalKafka()
    assert kafka.home == tmp_path.resolve() / ".local" / "kafka"
    assert kafka.bootstrap == "127.0.0.1:9092"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 9092, "controller_port": 9092},
        {"port": 0},
        {"sasl_port": 9094},
        {"sasl_port": 9094, "scram_user": "alice"},
        {"scram_user": "alice", "scram_password": "x"},
        {"sasl_port": 9094, "scram_user": "alice", "scram_password": "has,comma"},
        {"sasl_port": 9094, "scram_user": "al ice", "scram_password": "x"},
    ],
)
def test_bad_config_is_refused(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        LocalKafka(tmp_path, **kwargs)


def test_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_KAFKA_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("DISTILL_KAFKA_PORT", "19600")
    monkeypatch.setenv("DISTILL_KAFKA_CONTROLLER_PORT", "19601")
    kafka = LocalKafka.from_env()
    assert (kafka.home, kafka.port, kafka.controller_port) == ((tmp_path / "h").resolve(), 19600, 19601)
    monkeypatch.setenv("DISTILL_KAFKA_PORT", "ninety")
    with pytest.raises(ConfigError, match="DISTILL_KAFKA_PORT"):
        LocalKafka.from_env()


def test_from_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISTILL_KAFKA_HOME", "DISTILL_KAFKA_PORT", "DISTILL_KAFKA_CONTROLLER_PORT"):
        monkeypatch.delenv(name, raising=False)
    kafka = LocalKafka.from_env()
    assert (kafka.home, kafka.port, kafka.controller_port) == (Path(".local/kafka").resolve(), 9092, 9093)


def test_pom_pins_the_versions_the_code_expects() -> None:
    pom = lk.POM.read_text()
    assert f"<artifactId>kafka_2.13</artifactId>\n      <version>{KAFKA_VERSION}</version>" in pom
    assert "<version>2.0.17</version>" in pom  # slf4j 2, or the broker's logs vanish
    assert pom.count("<log4j.version>2.25.3</log4j.version>") == 1


def test_errors_share_one_base() -> None:
    errors = (ConfigError, MissingToolError, FormatError, BrokerStartError, lk.PortInUseError, lk.AssemblyError)
    assert all(issubclass(error, LocalKafkaError) for error in errors)


# -- tool checks ----------------------------------------------------------------------


def test_missing_java_and_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(MissingToolError) as caught:
        LocalKafka(tmp_path / "k").up(timeout=5)
    message = str(caught.value)
    assert "java and mvn not found on PATH" in message
    assert "apt-get install openjdk-17-jre-headless maven" in message


def test_maven_is_not_needed_once_jars_are_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = LocalKafka(tmp_path / "k")
    kafka.lib_dir.mkdir(parents=True)
    (kafka.lib_dir / f".kafka-{KAFKA_VERSION}-complete").touch()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(MissingToolError, match=r"^java not found on PATH"):
        kafka.up(timeout=5)


def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    write_script(bin_dir / "java", "import sys; print('openjdk version \"11.0.22\"', file=sys.stderr)")
    write_script(bin_dir / "mvn", "")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(MissingToolError, match="Java 11, but Kafka .* needs Java 17"):
        LocalKafka(tmp_path / "k").up(timeout=5)


# -- up() with a fake toolchain -------------------------------------------------------

FAKE_JAVA = """
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
call = {"args": args}
if "-version" in args:
    print('openjdk version "17.0.15" 2025-04-15', file=sys.stderr)
    sys.exit(0)
if "kafka.tools.StorageTool" in args:
    call["atfile"] = [Path(a[1:]).read_text() for a in args if a.startswith("@")]
    with open(Path(__file__).with_name("calls.jsonl"), "a") as log:
        log.write(json.dumps(call) + "\\n")
    if os.environ.get("FAKE_FORMAT_FAILS"):
        print("bad SCRAM argument: " + "".join(call["atfile"]), file=sys.stderr)
        sys.exit(1)
    lines = Path(args[args.index("-c") + 1]).read_text().splitlines()
    props = dict(line.split("=", 1) for line in lines if "=" in line)
    Path(props["log.dirs"]).mkdir(parents=True, exist_ok=True)
    Path(props["log.dirs"], "meta.properties").write_text("node.id=1\\n")
    sys.exit(0)
with open(Path(__file__).with_name("calls.jsonl"), "a") as log:
    log.write(json.dumps(call) + "\\n")
print("fake broker: refusing to start")
sys.exit(3)
"""

FAKE_MVN = f"""
import json, sys
from pathlib import Path
with open(Path(__file__).with_name("calls.jsonl"), "a") as log:
    log.write(json.dumps({{"args": ["mvn", *sys.argv[1:]]}}) + "\\n")
out = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("-DoutputDirectory="))
Path(out).mkdir(parents=True)
Path(out, "kafka_2.13-{KAFKA_VERSION}.jar").write_bytes(b"")
"""


def write_script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{textwrap.dedent(body)}")
    path.chmod(0o755)


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    write_script(bin_dir / "java", FAKE_JAVA)
    write_script(bin_dir / "mvn", FAKE_MVN)
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir / "calls.jsonl"


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_up_assembles_formats_and_reports_a_dying_broker(tmp_path: Path, fake_tools: Path) -> None:
    kafka = sasl_broker(tmp_path / "k")
    steps: list[str] = []
    with pytest.raises(BrokerStartError) as caught:
        kafka.up(timeout=20, progress=steps.append)
    message = str(caught.value)
    assert "exited during startup (exit 3)" in message and "fake broker: refusing to start" in message
    assert PASSWORD not in message and not any(PASSWORD in step for step in steps)
    assert not kafka.pid_file.exists()

    mvn, fmt, start = calls(fake_tools)
    assert mvn["args"][0] == "mvn" and "dependency:copy-dependencies" in mvn["args"]
    assert (kafka.lib_dir / f"kafka_2.13-{KAFKA_VERSION}.jar").exists()
    # The SCRAM user is created at format time through an @file, never on a command line.
    assert fmt["atfile"] == [f"--add-scram\nSCRAM-SHA-512=[name=alice,password={PASSWORD}]\n"]
    assert not any(PASSWORD in arg for call in calls(fake_tools) for arg in call["args"])
    assert not (kafka.home / "format.args").exists()
    assert start["args"][-2:] == ["kafka.Kafka", str(kafka.server_properties)]
    assert f"{kafka.lib_dir}/*" in start["args"]

    assert stat.S_IMODE(kafka.home.stat().st_mode) == 0o700
    for private in (kafka.server_properties, kafka.log4j_properties):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600

    # Second attempt: jars and storage are kept, only the start is retried.
    with pytest.raises(BrokerStartError):
        kafka.up(timeout=20)
    assert [c["args"][-2] for c in calls(fake_tools)[3:]] == ["kafka.Kafka"]


def test_format_failure_hides_the_password(
    tmp_path: Path, fake_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FORMAT_FAILS", "1")
    kafka = sasl_broker(tmp_path / "k")
    with pytest.raises(FormatError) as caught:
        kafka.up(timeout=5)
    assert "bad SCRAM argument" in str(caught.value) and "password=***" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert not (kafka.home / "format.args").exists()


def test_busy_port_is_reported(tmp_path: Path, fake_tools: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(lk.PortInUseError, match=f"port {port} .* already in use"):
            LocalKafka(tmp_path / "k", port, free_port()).up(timeout=5)


# -- down() and status() with nothing running ----------------------------------------


def spawn_sleeper(*marker_args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *marker_args])
    # Popen can return before /proc shows the new command line; down() decides on it.
    deadline = time.monotonic() + 10
    while marker_args[-1].encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return proc


def test_down_and_status_when_nothing_ever_ran(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "never")
    assert kafka.down() == "Kafka is not running"
    assert kafka.down() == "Kafka is not running"
    assert not kafka.home.exists()
    status = kafka.status()
    assert status == {
        "running": False,
        "ready": False,
        "pid": None,
        "bootstrap": "127.0.0.1:9092",
        "sasl_bootstrap": None,
        "home": str(kafka.home),
        "log": str(kafka.log_file),
        "kafka_version": KAFKA_VERSION,
    }


def test_down_never_signals_a_process_that_is_not_our_broker(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "k")
    kafka.home.mkdir(parents=True)
    # A live process whose command line even mentions kafka.Kafka, but not this home.
    bystander = spawn_sleeper("kafka.Kafka", "/elsewhere/server.properties")
    try:
        for pid in (bystander.pid, os.getpid(), 999_999_999):
            kafka.pid_file.write_text(f"{pid}\n")
            assert kafka.status()["running"] is False
            assert kafka.down() == "Kafka is not running (removed a stale pid file)"
            assert not kafka.pid_file.exists()
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_down_stops_a_process_that_looks_like_our_broker(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "k", free_port(), free_port())
    kafka.home.mkdir(parents=True)
    lookalike = spawn_sleeper("kafka.Kafka", str(kafka.server_properties))
    try:
        kafka.pid_file.write_text(f"{lookalike.pid}\n")
        lk._children[lookalike.pid] = lookalike  # as if up() had started it here
        assert kafka.status()["running"] is True
        assert kafka.down() == f"Kafka (pid {lookalike.pid}) stopped"
        assert lookalike.returncode is not None and not kafka.pid_file.exists()
        assert kafka.down() == "Kafka is not running"
    finally:
        lk._children.pop(lookalike.pid, None)
        lookalike.kill()
        lookalike.wait()
