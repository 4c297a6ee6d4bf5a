"""The home folder of a local Kafka broker: its ports and SCRAM user, where each of its files
lives, and the config files written into it::

    home/lib/                  jars (plus a marker naming the Kafka version)
    home/data/                 log dirs; data/meta.properties means "already formatted"
    home/logs/server.log       the broker's own log
    home/broker.out            the JVM's stdout/stderr
    home/broker.pid            pid of the broker we started
    home/server.properties, home/log4j2.properties   (mode 0600, home itself 0700)
    home/pom.xml, home/mvn.out a copy of pom.xml and Maven's output
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from streams.broker.localkafka.errors import ConfigError

KAFKA_VERSION = "4.1.1"  # keep in step with pom.xml

# Characters that would break the `[name=...,password=...]` syntax of `--add-scram`,
# or the one-argument-per-line file we pass it through.
_SCRAM_FORBIDDEN = re.compile(r'[,\[\]"\\\s]')


@dataclass
class BrokerHome:
    """One broker per home. With ``sasl_port`` and SCRAM credentials it also listens for
    SASL_PLAINTEXT; the SCRAM user is created when the storage is first formatted, so
    changing it later means `down` and deleting ``home/data``.
    """

    home: Path = Path(".local/kafka")
    port: int = 9092
    controller_port: int = 9093
    sasl_port: int | None = None
    scram_user: str | None = None
    scram_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Absolute, because the path is how down() recognises our broker's command line.
        self.home = Path(self.home).expanduser().resolve()
        ports = [self.port, self.controller_port] + ([self.sasl_port] if self.sasl_port else [])
        if any(not 0 < p < 65536 for p in ports) or len(set(ports)) != len(ports):
            raise ConfigError(f"ports must be distinct numbers in 1..65535, got {ports}")
        sasl = (self.sasl_port, self.scram_user, self.scram_password)
        if any(v is not None for v in sasl) and not all(sasl):
            raise ConfigError("a SASL listener needs all of sasl_port, scram_user and scram_password")
        for what, value in (("scram_user", self.scram_user), ("scram_password", self.scram_password)):
            if value is not None and _SCRAM_FORBIDDEN.search(value):
                raise ConfigError(f"{what} must not contain whitespace or any of , [ ] \" \\")

    @classmethod
    def from_env(cls) -> BrokerHome:
        """Home and ports from DISTILL_KAFKA_HOME / _PORT / _CONTROLLER_PORT."""
        env = os.environ
        try:
            port = int(env.get("DISTILL_KAFKA_PORT", "9092"))
            controller_port = int(env.get("DISTILL_KAFKA_CONTROLLER_PORT", "9093"))
        except ValueError as exc:
            raise ConfigError(
                f"DISTILL_KAFKA_PORT and DISTILL_KAFKA_CONTROLLER_PORT must be integers ({exc})"
            ) from None
        return cls(Path(env.get("DISTILL_KAFKA_HOME", ".local/kafka")), port, controller_port)

    # -- layout -----------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.sasl_port}" if self.sasl_port else None

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "server.log"

    @property
    def server_properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def log4j_properties(self) -> Path:
        return self.home / "log4j2.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def out_file(self) -> Path:
        return self.home / "broker.out"

    @property
    def _lib_marker(self) -> Path:
        return self.lib_dir / f".kafka-{KAFKA_VERSION}-complete"

    # -- config files -----------------------------------------------------------------

    def render_server_properties(self) -> str:
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}", f"CONTROLLER://127.0.0.1:{self.controller_port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if self.sasl_port:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        lines = [
            f"# Written by distill-streams for Apache Kafka {KAFKA_VERSION}; rewritten on every start.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners={','.join(listeners)}",
            f"advertised.listeners={','.join(advertised)}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={','.join(protocols)}",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.data_dir}",
            # One node: every internal topic must settle for a single replica.
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "num.partitions=1",
            # Faust creates some of its internal topics by producing to them.
            "auto.create.topics.enable=true",
            # A dev broker has one consumer per group; waiting for more only slows tests.
            "group.initial.rebalance.delay.ms=0",
            "log.retention.check.interval.ms=300000",
            # A deleted topic's files go a second later, not Kafka's 60: the benchmark deletes
            # its ceiling topics (~700 MB at 100,000 runs) before the pipeline runs, and their
            # removal a minute later came in the middle of the latency phase.
            "file.delete.delay.ms=1000",
        ]
        if self.sasl_port:
            # No credentials here: SCRAM users live in the cluster metadata (see _format).
            lines += [
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            ]
        return "\n".join(lines) + "\n"

    def render_log4j_properties(self) -> str:
        logs = self.log_file.parent
        return "\n".join(
            [
                "status = warn",
                "appender.file.type = RollingFile",
                "appender.file.name = FILE",
                f"appender.file.fileName = {self.log_file}",
                f"appender.file.filePattern = {logs}/server.log.%i",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "appender.file.policies.type = Policies",
                "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
                "appender.file.policies.size.size = 20MB",
                "appender.file.strategy.type = DefaultRolloverStrategy",
                "appender.file.strategy.max = 3",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = FILE",
                "",
            ]
        )
