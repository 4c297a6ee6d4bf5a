"""Static checks of docker-compose.yml, deploy/*.yaml and the Dockerfile against the code.

Nothing here needs Docker, Kubernetes or Kafka: the files are parsed and compared with
``TOPIC_SPECS`` (streams/broker/topics.py) and ``DistillSettings`` (streams/settings.py), so a
topic, a policy or a setting cannot change in one place and silently not in the other.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import pytest
import yaml

from streams.broker.topics import TOPIC_SPECS, TopicSpec
from streams.settings import DistillSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY_DIR = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"

PREFIX = "distill."
ENV_NAME = re.compile(r"\bDISTILL_[A-Z0-9_]+\b")
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SETTING_NAMES = {f"DISTILL_{name.upper()}" for name in DistillSettings.model_fields}


# ---------------------------------------------------------------------------- loading


def _load_all(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with COMPOSE_FILE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    files = sorted(DEPLOY_DIR.glob("*.yaml"))
    assert {f.name for f in files} >= {"kafka.yaml", "topics.yaml", "user.yaml", "worker.yaml"}
    docs = [doc for f in files for doc in _load_all(f)]
    for doc in docs:
        assert isinstance(doc, dict) and doc.get("kind") and doc.get("apiVersion"), doc
    return docs


def _of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = _of_kind(docs, kind)
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def kafka(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return _one(manifests, "Kafka")


@pytest.fixture(scope="module")
def statefulset(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    sts = _one(manifests, "StatefulSet")
    assert sts["metadata"]["name"] == "distill-worker"
    return sts


@pytest.fixture(scope="module")
def container(statefulset: dict[str, Any]) -> dict[str, Any]:
    containers = statefulset["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.fixture(scope="module")
def configmap(manifests: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    names = [s["configMapRef"]["name"] for s in container.get("envFrom", []) if "configMapRef" in s]
    assert len(names) == 1, "the worker takes its settings from one ConfigMap"
    maps = [m for m in _of_kind(manifests, "ConfigMap") if m["metadata"]["name"] == names[0]]
    assert len(maps) == 1, f"ConfigMap {names[0]} is not defined in deploy/"
    data = maps[0]["data"]
    for key, value in data.items():
        assert isinstance(value, str), f"ConfigMap value {key} must be a string, got {value!r}"
    return data


@pytest.fixture(scope="module")
def worker_env(configmap: dict[str, str], container: dict[str, Any]) -> dict[str, str]:
    """The literal environment of the worker pod: ConfigMap overridden by `env` values."""
    env = dict(configmap)
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
    return env


@pytest.fixture(scope="module")
def compose_worker_env(compose: dict[str, Any]) -> dict[str, str]:
    return _compose_env(compose["services"]["worker"])


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> DistillSettings:
    for name in list(os.environ):
        if name.startswith("DISTILL_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return DistillSettings()


def _walk(node: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _expected_names() -> set[str]:
    return {PREFIX + spec.name for spec in TOPIC_SPECS}


def _spec(topic_name: str) -> TopicSpec:
    return {PREFIX + s.name: s for s in TOPIC_SPECS}[topic_name]


# ------------------------------------------------------------------- KafkaTopic vs code


def test_every_topic_spec_has_exactly_one_kafka_topic(manifests, kafka):
    topics = _of_kind(manifests, "KafkaTopic")
    names = [t["spec"]["topicName"] for t in topics]
    assert sorted(names) == sorted(_expected_names()), "KafkaTopics and TOPIC_SPECS differ"
    assert len(names) == len(set(names)), "a topic is declared twice"
    for topic in topics:
        meta = topic["metadata"]
        assert K8S_NAME.match(meta["name"]), f"{meta['name']} is not a valid resource name"
        assert meta["name"] == topic["spec"]["topicName"].replace(".", "-")
        assert meta["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"


def test_kafka_topic_config_matches_spec(manifests):
    for topic in _of_kind(manifests, "KafkaTopic"):
        spec = _spec(topic["spec"]["topicName"])
        config = {k: str(v) for k, v in topic["spec"]["config"].items()}
        assert config.pop("min.insync.replicas") == "2", topic["spec"]["topicName"]
        assert config == spec.config(), topic["spec"]["topicName"]
        assert topic["spec"]["replicas"] == 3
        assert int(topic["spec"]["replicas"]) > 2  # min.insync.replicas 2 leaves one to lose


def test_kafka_topics_are_co_partitioned(manifests, configmap, statefulset):
    counts = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in _of_kind(manifests, "KafkaTopic")}
    input_counts = {counts[PREFIX + s.name] for s in TOPIC_SPECS if s.partitions == "input"}
    assert len(input_counts) == 1, f"input topics must share one partition count: {input_counts}"
    (input_count,) = input_counts
    assert input_count == 12
    assert str(input_count) == configmap["DISTILL_PARTITIONS"]
    for spec in TOPIC_SPECS:
        assert spec.partitions in ("input", "one"), spec
        if spec.partitions == "one":
            assert counts[PREFIX + spec.name] == 1, spec.name
    # More workers than partitions would sit idle.
    assert statefulset["spec"]["replicas"] <= input_count


# ------------------------------------------------------------------- compose vs code


def _compose_topic_commands(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    service = compose["services"]["topics"]
    command = service["command"]
    script = "\n".join(command) if isinstance(command, list) else command
    created: dict[str, dict[str, Any]] = {}
    for line in script.splitlines():
        words = shlex.split(line)
        if not words or not words[0].endswith("kafka-topics.sh") or "--create" not in words:
            continue
        parsed: dict[str, Any] = {"flags": set(), "config": {}}
        i = 1
        while i < len(words):
            word = words[i]
            if word in ("--create", "--if-not-exists"):
                parsed["flags"].add(word)
            elif word == "--config":
                key, value = words[i + 1].split("=", 1)
                parsed["config"][key] = value
                i += 1
            else:
                parsed[word] = words[i + 1]
                i += 1
            i += 1
        assert parsed["--topic"] not in created, f"{parsed['--topic']} created twice"
        created[parsed["--topic"]] = parsed
    return created


def test_compose_topics_service_creates_every_topic_with_its_policy(compose, compose_worker_env):
    created = _compose_topic_commands(compose)
    assert set(created) == _expected_names()
    partitions = int(compose_worker_env["DISTILL_PARTITIONS"])
    assert partitions == 2
    for name, cmd in created.items():
        spec = _spec(name)
        assert cmd["flags"] == {"--create", "--if-not-exists"}, name
        assert cmd["config"] == spec.config(), name
        expected = partitions if spec.partitions == "input" else 1
        assert int(cmd["--partitions"]) == expected, name
        assert int(cmd["--replication-factor"]) == 1, name
        host, port = cmd["--bootstrap-server"].rsplit(":", 1)
        assert host in compose["services"] and port == "9092", name


def test_compose_services_wait_for_each_other(compose):
    services = compose["services"]
    assert services["topics"]["image"] == services["kafka"]["image"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_compose_kafka_is_apache_kafka_4_with_healthcheck(compose, kafka):
    service = compose["services"]["kafka"]
    image, _, tag = service["image"].partition(":")
    assert image == "apache/kafka"
    assert tag.split(".")[0] == "4", tag
    assert tag == str(kafka["spec"]["kafka"]["version"]), "compose and Strimzi run different Kafka versions"
    test = service["healthcheck"]["test"]
    test = " ".join(test) if isinstance(test, list) else test
    assert "kafka-broker-api-versions.sh" in test and "localhost:9092" in test
    env = _compose_env(service)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "localhost:29092" in env["KAFKA_ADVERTISED_LISTENERS"]
    for name in (
        "KAFKA_NODE_ID",
        "KAFKA_LISTENERS",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    ):
        assert env.get(name), name
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    mounts = [str(v).split(":")[0] for v in service["volumes"]]
    assert any(m in (compose.get("volumes") or {}) for m in mounts), "kafka data is not on a volume"


def test_compose_worker_settings(compose, compose_worker_env, monkeypatch):
    assert "DISTILL_BOOTSTRAP" in compose_worker_env
    settings = _settings_from(compose_worker_env, monkeypatch)
    host, port = settings.bootstrap.rsplit(":", 1)
    assert host in compose["services"] and port == "9092"
    assert settings.topic_prefix == PREFIX
    assert settings.web_host == "0.0.0.0"
    service = compose["services"]["worker"]
    assert service["build"]
    # The RocksDB folder is on a named volume.
    volumes = {str(v).split(":")[1]: str(v).split(":")[0] for v in service["volumes"]}
    assert volumes[str(settings.data_dir)] in (compose.get("volumes") or {})
    # The web port is published, on loopback only.
    published = [str(p) for p in service["ports"]]
    assert f"127.0.0.1:{settings.web_port}:{settings.web_port}" in published


def test_compose_ports_bound_to_loopback(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)


# ---------------------------------------------------------------- settings everywhere


def test_every_distill_env_name_is_a_setting(compose, manifests):
    used: set[str] = set()
    for service in compose["services"].values():
        used |= {n for n in _compose_env(service) if n.startswith("DISTILL_")}
    for cm in _of_kind(manifests, "ConfigMap"):
        used |= {n for n in cm.get("data", {}) if n.startswith("DISTILL_")}
    for key, value in _walk(manifests):
        if key == "env":
            used |= {item["name"] for item in value if item["name"].startswith("DISTILL_")}
    # Anything spelled anywhere in the files (comments, scripts) too.
    for path in [COMPOSE_FILE, DOCKERFILE, *DEPLOY_DIR.glob("*.yaml")]:
        used |= set(ENV_NAME.findall(path.read_text(encoding="utf-8")))
    assert used, "no DISTILL_* variables found"
    unknown = sorted(used - SETTING_NAMES)
    assert not unknown, f"not fields of DistillSettings: {unknown}"


def test_kubernetes_settings_parse(worker_env, monkeypatch):
    settings = _settings_from(worker_env, monkeypatch)
    assert settings.topic_prefix == PREFIX
    assert settings.security_protocol == "SASL_SSL"
    assert settings.sasl_mechanism == "SCRAM-SHA-512"
    assert settings.processing_guarantee == "exactly_once"
    assert settings.replication_factor == 3
    assert settings.web_host == "0.0.0.0"


def test_worker_reaches_the_tls_scram_listener(kafka, worker_env):
    listeners = {item["name"]: item for item in kafka["spec"]["kafka"]["listeners"]}
    assert listeners["plain"]["port"] == 9092 and listeners["plain"]["tls"] is False
    tls = listeners["tls"]
    assert tls["port"] == 9093 and tls["tls"] is True
    assert tls["authentication"]["type"] == "scram-sha-512"
    cluster = kafka["metadata"]["name"]
    assert worker_env["DISTILL_BOOTSTRAP"] == f"{cluster}-kafka-bootstrap:{tls['port']}"


# --------------------------------------------------------------- Strimzi cluster + user


def test_kafka_cluster(manifests, kafka):
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1beta2"
    annotations = kafka["metadata"]["annotations"]
    assert annotations["strimzi.io/node-pools"] == "enabled"
    assert annotations["strimzi.io/kraft"] == "enabled"
    config = kafka["spec"]["kafka"]["config"]
    assert int(config["default.replication.factor"]) == 3
    assert int(config["offsets.topic.replication.factor"]) == 3
    assert int(config["transaction.state.log.replication.factor"]) == 3
    assert int(config["transaction.state.log.min.isr"]) == 2
    assert int(config["min.insync.replicas"]) == 2
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert "topicOperator" in kafka["spec"]["entityOperator"]
    assert "userOperator" in kafka["spec"]["entityOperator"]
    pool = _one(manifests, "KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert pool["spec"]["replicas"] == 3
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["spec"]["storage"]["type"] == "persistent-claim"


def test_kafka_user_acls_match_settings(manifests, kafka, worker_env, monkeypatch):
    settings = _settings_from(worker_env, monkeypatch)
    user = _one(manifests, "KafkaUser")
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert user["spec"]["authorization"]["type"] == "simple"
    granted: dict[tuple[str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        if resource["type"] != "cluster":
            assert resource.get("patternType") == "prefix", resource
        granted[(resource["type"], resource.get("name", ""))] = set(acl["operations"])
    assert {"Read", "Write", "Describe"} <= granted[("topic", settings.topic_prefix)]
    # Faust's changelog and leader topics are named after the application id.
    assert {"Read", "Write", "Create"} <= granted[("topic", settings.application_id)]
    assert "Read" in granted[("group", settings.application_id)]
    assert {"Write", "Describe"} <= granted[("transactionalId", settings.application_id)]


def test_worker_credentials_come_from_strimzi_secrets(manifests, kafka, container, statefulset, worker_env):
    user = _one(manifests, "KafkaUser")
    env = {item["name"]: item for item in container["env"]}
    assert env["DISTILL_SASL_USERNAME"]["value"] == user["metadata"]["name"]
    ref = env["DISTILL_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": user["metadata"]["name"], "key": "password"}
    assert worker_env["DISTILL_SECURITY_PROTOCOL"] == "SASL_SSL"
    # The CA file is a mounted key of the cluster CA secret.
    cafile = PurePosixPath(worker_env["DISTILL_SSL_CAFILE"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    secret = volumes[mounts[str(cafile.parent)]]["secret"]
    assert secret["secretName"] == f"{kafka['metadata']['name']}-cluster-ca-cert"
    assert {"key": "ca.crt", "path": cafile.name} in secret["items"]


# --------------------------------------------------------------------- the worker pods


def _resolve_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    return named[port]


def test_probes_target_the_web_port(container, configmap):
    web_port = int(configmap["DISTILL_WEB_PORT"])
    assert configmap["DISTILL_WEB_HOST"] == "0.0.0.0"
    for probe, path in (("readinessProbe", "/"), ("livenessProbe", "/health")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert _resolve_port(container, get["port"]) == web_port, probe
    if "startupProbe" in container:
        assert _resolve_port(container, container["startupProbe"]["httpGet"]["port"]) == web_port


def test_statefulset_shape(statefulset, container):
    spec = statefulset["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 60
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_state_volume_is_mounted_at_data_dir(statefulset, container, configmap):
    templates = {t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.get(configmap["DISTILL_DATA_DIR"]) in templates


def test_services_and_pdb_select_the_worker_pods(manifests, statefulset, container, configmap):
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    selector = statefulset["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()

    pdb = _one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    services = {s["metadata"]["name"]: s for s in _of_kind(manifests, "Service")}
    headless = services[statefulset["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    web_port = int(configmap["DISTILL_WEB_PORT"])
    scraped = [s for s in services.values() if s["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true"]
    assert len(scraped) == 1
    metrics = scraped[0]
    annotations = metrics["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(web_port)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert any(p["port"] == web_port and _resolve_port(container, p["targetPort"]) == web_port for p in metrics["spec"]["ports"])
    for service in services.values():
        assert service["spec"]["selector"].items() <= pod_labels.items(), service["metadata"]["name"]


# ----------------------------------------------------------------------------- secrets


SECRET_KEY = re.compile(r"(password|passwd|secret|token|jaas)", re.IGNORECASE)
REFERENCE_KEYS = {"secretKeyRef", "secretRef", "secret", "secretName"}


def test_no_plaintext_secret_in_any_manifest(compose, manifests):
    assert not _of_kind(manifests, "Secret"), "Secrets are generated by Strimzi, never committed"
    for key, value in _walk([compose, *manifests]):
        # A secret-looking key may reference a Secret (secretKeyRef, secretName, ...) but
        # never hold a literal string (booleans like automountServiceAccountToken are fine).
        if isinstance(key, str) and SECRET_KEY.search(key) and key not in REFERENCE_KEYS:
            assert not (isinstance(value, str) and value), f"literal secret {key}: {value!r}"
        if key in ("env", "environment") and isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and SECRET_KEY.search(item.get("name", "")):
                    assert "value" not in item, f"{item['name']} has a literal value"
        if key == "environment" and isinstance(value, dict):
            for name, literal in value.items():
                assert not SECRET_KEY.search(name) or not literal, f"{name} has a literal value"
    for path in [COMPOSE_FILE, DOCKERFILE, *DEPLOY_DIR.glob("*.yaml")]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not re.match(r"^\s*-?\s*password\s*:\s*[^\s#]", line, re.IGNORECASE), f"{path.name}:{number}"
            assert "sasl.jaas.config" not in line, f"{path.name}:{number}"


# ---------------------------------------------------------------------------- image


def test_dockerfile(configmap):
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert re.search(r"pip install \.(\s|$)", text)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "DISTILL_DATA_DIR=/var/lib/distill" in text
    assert configmap["DISTILL_DATA_DIR"] == "/var/lib/distill"
    assert "DISTILL_WEB_HOST=0.0.0.0" in text
    assert f"EXPOSE {configmap['DISTILL_WEB_PORT']}" in lines
    assert 'ENTRYPOINT ["distill"]' in lines
    assert 'CMD ["worker"]' in lines
    with (ROOT / "pyproject.toml").open("rb") as fh:
        assert "distill" in tomllib.load(fh)["project"]["scripts"]
