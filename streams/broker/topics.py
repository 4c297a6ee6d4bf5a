"""The topics of SPEC section 1: names, keys, cleanup policies, and who creates them.

``TOPIC_SPECS`` is the single source of truth: the worker, the CLI, docker-compose and
the Kubernetes manifests are all checked against it.
"""

from dataclasses import dataclass

from streams.settings import DistillSettings

WEEK_MS = 7 * 24 * 3600 * 1000
MIB = 1024 * 1024


@dataclass(frozen=True)
class TopicSpec:
    name: str  # without the prefix
    key: str
    cleanup_policy: str  # "compact" or "delete"
    partitions: str  # "input" (DISTILL_PARTITIONS, co-partitioned), or "one"
    retention_ms: int | None = None  # None: the broker's default; -1: forever
    max_message_bytes: int | None = None  # None: the broker's default (1 MiB)

    def config(self) -> dict[str, str]:
        config = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        if self.max_message_bytes is not None:
            config["max.message.bytes"] = str(self.max_message_bytes)
        return config

    def partition_count(self, settings: DistillSettings) -> int:
        return settings.partitions if self.partitions == "input" else 1


EVIDENCE = TopicSpec("evidence", "run_id", "compact", "input")
SCORED_RUNS = TopicSpec("scored-runs", "run_id", "compact", "input")
FILE_MANIFEST = TopicSpec("file-manifest", "repo-relative path", "compact", "one")
RAG_SAMPLES = TopicSpec("rag-samples", "sample id", "compact", "input")
SFT_SAMPLES = TopicSpec("sft-samples", "sample id", "compact", "input")
PREFERENCE_PAIRS = TopicSpec("preference-pairs", "sample id", "compact", "input")
QUARANTINE = TopicSpec("quarantine", "quarantine id", "delete", "input", retention_ms=-1)
# Internal: joined runs re-keyed by task id, so one task's runs meet in one pair buffer.
PAIR_CANDIDATES = TopicSpec("pair-candidates", "task_id", "delete", "input", retention_ms=WEEK_MS)
# Internal: sample candidates re-keyed by content key, so every candidate of one content meets
# in one dedup group (SPEC 11).
DEDUP_CANDIDATES = TopicSpec("dedup-candidates", "content key", "delete", "input", retention_ms=WEEK_MS)
# The registered evaluation sets (SPEC 12): read whole by every worker, like the file manifest.
# One message per item: a SWE-bench item (problem statement, patch, test patch) can pass 1 MiB.
EVAL_SETS = TopicSpec("eval-sets", "set name/item id", "compact", "one", max_message_bytes=16 * MIB)

INPUT_TOPICS = (EVIDENCE, SCORED_RUNS)
OUTPUT_TOPICS = (RAG_SAMPLES, SFT_SAMPLES, PREFERENCE_PAIRS, QUARANTINE)
INTERNAL_TOPICS = (PAIR_CANDIDATES, DEDUP_CANDIDATES)
TOPIC_SPECS = (EVIDENCE, SCORED_RUNS, FILE_MANIFEST, EVAL_SETS, *OUTPUT_TOPICS, *INTERNAL_TOPICS)
