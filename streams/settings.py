"""All settings, read once from ``DISTILL_*`` environment variables (or flags) at the entry point."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DistillSettings(BaseSettings):
    """Every knob of the product. Durations are in seconds."""

    model_config = SettingsConfigDict(env_prefix="DISTILL_", frozen=True, extra="ignore")

    bootstrap: str = "localhost:9092"
    topic_prefix: str = "distill."
    data_dir: Path = Path(".distill")
    app_id: str = ""  # empty: derived from topic_prefix, so two prefixes never share a group
    partitions: int = Field(default=2, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    join_timeout: float = Field(default=3600.0, gt=0)
    pair_window: float = Field(default=86400.0, gt=0)
    pair_grace: float = Field(default=600.0, ge=0)
    pair_idle_close: float = Field(default=60.0, gt=0)
    max_pairs_per_task: int = Field(default=5, ge=1)
    include_partial: bool = False
    include_review: bool = False
    max_record_bytes: int = Field(default=900_000, ge=1024)
    # SPEC 10: what a found secret does to a run (quarantine: secret_in_content; redact: the run
    # passes with <SECRET:rule> in its samples; off: no scanning), and the user's gitleaks rules file.
    secrets: Literal["quarantine", "redact", "off"] = "quarantine"
    secret_rules: Path | None = None
    pii: Literal["off", "redact"] = "off"  # redact: e-mails and public IPs in samples and pairs
    dedup: bool = True  # SPEC 11: one sample per content (DISTILL_DEDUP=on|off)

    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    session_timeout: float = Field(default=30.0, ge=6)  # a dead worker's partitions move after this
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    log_level: str = "warning"
    state_memory_mib: int = Field(default=64, ge=8)  # RocksDB block cache + write buffers, all tables
    standby_replicas: int = Field(default=0, ge=0)  # standby copies of each table partition on other workers
    # Return freed memory to the system this often (streams/faust_app/memory.py); 0: never.
    memory_trim_interval: float = Field(default=10.0, ge=0)
    # The longest hold of a fetch at the broker (streams/faust_fixes/fetch_wait.py).
    fetch_max_wait: float = Field(default=0.02, gt=0, le=1.5)
    # A fetch returns once the broker holds this much for it, or at fetch_max_wait.
    fetch_min_bytes: int = Field(default=32768, ge=1)
    # How often offsets, state and (exactly-once) outputs commit while a backlog is read; a
    # worker that keeps up commits sooner (commit_when_caught_up).
    commit_interval: float = Field(default=0.5, gt=0)
    # Exactly-once: a worker that keeps up (less than a batch unread) commits this soon after a batch,
    # not at the next commit_interval (streams/faust_fixes/prompt_commit.py); 0: on the interval only.
    commit_when_caught_up: float = Field(default=0.02, ge=0)
    batch_size: int = Field(default=1000, ge=1)  # most events an agent takes at a time (streams/faust_app/agents/batches.py)
    batch_wait: float = Field(default=0.02, gt=0, le=1.0)  # longest wait for a batch to fill: latency at low load
    # Scores read ahead of their evidence wait in Kafka, this long at most without new evidence
    # (streams/faust_app/alignment.py); 0, the default: scores are never held back. Opt-in: since the
    # inline delivery (streams/faust_fixes/delivery.py) it buys nothing measurable (docs/benchmarks.md, item 19).
    alignment_idle: float = Field(default=0.0, ge=0)
    # Work waiting and nothing moving this long: /health fails (streams/faust_app/health.py).
    stall_timeout: float = Field(default=300.0, gt=0)
    stall_restart: bool = True  # a stalled worker also restarts itself, as a liveness probe would restart its pod
    # How long a command's read of a topic waits for a broker that stopped answering (a restart)
    # before it ends with BrokerUnavailable (streams/broker/kafka_io.py read_topic; docs/operations.md).
    broker_timeout: float = Field(default=30.0, gt=0)

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    ssl_cafile: Path | None = None

    @property
    def application_id(self) -> str:
        return self.app_id or f"{self.topic_prefix}worker".replace(".", "-").strip("-")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def pair_tick_interval(self) -> float:
        """How often each pair partition is asked whether it idled."""
        return max(0.5, self.pair_idle_close / 4)

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    def options(self) -> dict[str, object]:
        """The options that decide what enters a dataset (written into receipts)."""
        return {
            "join_timeout": self.join_timeout,
            "pair_window": self.pair_window,
            "pair_grace": self.pair_grace,
            "pair_idle_close": self.pair_idle_close,
            "max_pairs_per_task": self.max_pairs_per_task,
            "include_partial": self.include_partial,
            "include_review": self.include_review,
            "max_record_bytes": self.max_record_bytes,
            "secrets": self.secrets,
            "pii": self.pii,
            "dedup": self.dedup,
        }
