"""SPEC 10 end to end, on the real broker: no planted secret leaves the product.

One worker (exactly-once unless DISTILL_TEST_GUARANTEE says otherwise) takes runs with fake
secrets in every place a record can carry them, and input that is not a valid record at all,
in two phases (the second re-scores a run of a closed window, sends a conflicting evidence
record and moves stream time past a waiting score's join timeout). Then everything the product
writes is read back, each the way its reader reads it:

- every message of the topics it writes (samples, pairs, quarantine, and the internal
  pair-candidates and dedup-candidates), read uncommitted: keys, values, headers;
- the files of `export` in every format (JSONL, Parquet decoded, TRL, OpenAI, card, receipt);
- `distill quarantine tail --from-beginning` (JSON and text) and `distill stats` (JSON and
  table) run as commands, and the library functions behind them;
- the worker's log and its /metrics text.

A JSON document is read as its reader would read it: every string in it (keys too), a string
that is itself JSON, and the base64 of ``raw`` decoded. Nowhere may a planted secret appear,
nor any 12-character piece of one (a cut secret is still a leak), except pieces every fake of
its format shares (a PEM header). The fakes are made here, from a seeded random, by
``tests.unit.secret_fakes``: no literal key is in the repository.

The changelog topics and the input topics are out of scope (SPEC 10): nothing is asserted of them.
"""

import asyncio
import base64
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ahocorasick
import aiohttp
import orjson
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaConsumer

from streams.broker import kafka_io
from streams.commands.export import ExportOptions, export
from streams.commands.export_formats import KINDS
from streams.commands.quarantine_tail import tail
from streams.commands.stats import collect
from streams.commands.wait import wait_caught_up
from streams.rules.quarantine import RAW_KEEP_BYTES
from streams.settings import DistillSettings
from tests.integration.conftest import ingest, running_worker, write_jsonl
from tests.unit.secret_fakes import FAKES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
WINDOW = 12  # a piece of a secret this long is a leak
WRITTEN_TOPICS = ("rag-samples", "sft-samples", "preference-pairs", "quarantine", "pair-candidates", "dedup-candidates")
EVERYTHING = ExportOptions(file_format="both", preference_format="both", openai=True, card=True)
ERROR = r"^(evidence|score) [A-Za-z_\[\]0-9.]+: a secret of rule '[a-z0-9-]+' at characters \d+-\d+$"


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------ the planted secrets


@dataclass(frozen=True)
class Secret:
    place: str  # where it was planted, for the failure message
    rule: str
    written: str  # how it is written in the input
    secret: str  # the part the rule reports

    @property
    def placeholder(self) -> str:
        return f"<SECRET:{self.rule}>"

    def redact(self, text: str) -> str:
        return text.replace(self.secret, self.placeholder)


class Plants:
    """The fakes planted, and the needles that find any of them (or a piece of one) in a text."""

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)
        self.secrets: list[Secret] = []

    def plant(self, place: str, rule: str, form: str | None = None) -> Secret:
        """A fresh fake of ``rule``; ``form``: the way it must be written (a prefix of its text)."""
        while True:
            written, secret = FAKES[rule](self.rng)
            if form is None or written.startswith(form):
                break
        planted = Secret(place, rule, written, secret)
        self.secrets.append(planted)
        return planted

    def automaton(self) -> ahocorasick.Automaton:
        """Each secret whole, and each of its 12-character pieces but those any fake of its format
        has (fixed prefixes and PEM armour): they are the format, not the secret."""
        others = random.Random("the format, not the secret")
        common: dict[str, set[str]] = {}
        for rule in {s.rule for s in self.secrets}:
            common[rule] = {piece for _ in range(40) for piece in pieces(FAKES[rule](others)[1])}
        automaton = ahocorasick.Automaton()
        for planted in self.secrets:
            for needle in {planted.secret, *(pieces(planted.secret) - common[planted.rule])}:
                automaton.add_word(needle, (needle, planted))
        automaton.make_automaton()
        return automaton


def pieces(secret: str) -> set[str]:
    return {secret[i:i + WINDOW] for i in range(len(secret) - WINDOW + 1)}


# ------------------------------------------------------------------ runs and their expected outcomes


@dataclass
class Run:
    label: str
    run_id: str
    task: str
    category: str
    text: str
    offset: int  # the score's provenance line_offset: how its records are told apart
    scored_at: str
    files: list[str] = field(default_factory=lambda: ["src/app.py"])
    source_category: str = "scrum_reviews"
    reasons: list[str] = field(default_factory=lambda: ["looks right"])
    score_task: str | None = None
    evidence_provenance: dict | None = None
    score_provenance: dict | None = None
    evidence_extra: dict = field(default_factory=dict)
    score_extra: dict = field(default_factory=dict)
    content_secrets: list[tuple[str, str, Secret]] = field(default_factory=list)  # (side, path, secret): text, files[0]
    id_secrets: list[tuple[str, str, Secret]] = field(default_factory=list)  # run and task ids
    duplicate: bool = False  # its content repeats an earlier run's

    def evidence(self) -> dict:
        return {"schema_version": 1, "run_id": self.run_id, "task_id": self.task, "source_category": self.source_category,
                "text": self.text, "source_files": self.files,
                "provenance": self.evidence_provenance or {"source_file": "runs/evidence.jsonl", "line_offset": self.offset,
                                                           "sig_hash": f"ev-{self.offset:04d}", "recorded_at": at(0)},
                **self.evidence_extra}

    def score(self) -> dict:
        return {"schema_version": 1, "evidence_run_id": self.run_id, "evidence_task_id": self.score_task or self.task,
                "category": self.category, "reasons": self.reasons,
                "provenance": self.score_provenance or {"source_file": "runs/scores.jsonl", "line_offset": self.offset,
                                                        "sig_hash": f"sc-{self.offset:04d}", "recorded_at": at(1)},
                "scored_at": self.scored_at, **self.score_extra}

    def gated(self, mode: str) -> list[tuple[str, str, Secret]]:
        return self.id_secrets + (self.content_secrets if mode == "quarantine" else [])

    def secret_errors(self, mode: str) -> list[str]:
        """The ``secret_in_content`` errors the run must get: rule ids and offsets, never the secret."""
        errors = []
        for side, path, planted in self.gated(mode):
            value = self.field_value(side, path)
            start = value.index(planted.secret)
            errors.append(f"{side} {path}: a secret of rule {planted.rule!r} at characters {start}-{start + len(planted.secret)}")
        return sorted(errors)

    def field_value(self, side: str, path: str) -> str:
        record = self.evidence() if side == "evidence" else self.score()
        return record["source_files"][0] if path == "source_files[0]" else record[path]

    def expected(self, mode: str) -> dict[str, str | None]:
        """Its outcome at each stage: "sample" or the quarantine reason (preference: a record or None)."""
        gated = bool(self.gated(mode))
        rest = "secret_in_content" if gated else "duplicate_content" if self.duplicate else "sample"
        rag = {"rejected": "unsafe_rag_category", "needs_human_review": "category_disallowed"}.get(self.category, rest)
        sft = "unsafe_sft_category" if self.category in ("rejected", "needs_human_review") else rest
        return {"rag": rag, "sft": sft, "preference": "secret_in_content" if gated else None}


class Corpus:
    """The input of both phases, built once per mode from the same seed."""

    def __init__(self) -> None:
        self.plants = Plants("secrets never leave the input topics")
        self.runs: dict[str, Run] = {}
        self.rescore: dict = {}
        self.rescored: Run | None = None
        self.orphan: dict = {}
        self.late: list[Run] = []
        self.bad_evidence: list[bytes | dict] = []
        self.bad_scores: list[bytes | dict] = []
        self.keyed_wrong: tuple[bytes, bytes] = (b"", b"")
        self.bad_evalset_key = b""
        self.tombstone_key = b""
        # Planted in input the runs table does not keep (invalid messages, a conflicting evidence
        # record): how many times each is written in its message, key and value.
        self.unkept: dict[Secret, int] = {}
        self.conflict: dict = {}
        self._offset = 0
        self._build()

    def plant(self, place: str, rule: str, form: str | None = None) -> Secret:
        return self.plants.plant(place, rule, form)

    def add(self, label: str, task: str, category: str, text: str | None = None, **more: Any) -> Run:
        self._offset += 1
        run = Run(label, more.pop("run_id", f"run-{label}"), task, category,
                  text or f"Run {label}: the change to the deploy script reads well and its tests pass ({self._offset}).",
                  self._offset, at(self._offset), **more)
        self.runs[label] = run
        return run

    def _build(self) -> None:
        # Task a: secrets in reasons (first and later) of runs that pair, in the text of runs of the
        # categories that never make samples (their records carry the score as source_record).
        first = self.plant("reasons[0] of an accepted run that pairs", "github-pat")
        self.add("a-acc", "task-a", "accepted", reasons=[f"{first.written} was printed by the build; the rest is fine", "tests pass"])
        rejected_first, later = self.plant("reasons[0] of a rejected run that pairs", "openai-api-key"), \
            self.plant("reasons[1] of a rejected run", "slack-bot-token")
        self.add("a-rej", "task-a", "rejected", reasons=[f"the run leaked {rejected_first.written}", f"and {later.written} too"])
        review = self.plant("evidence text of a needs_human_review run", "anthropic-api-key")
        self.add("a-rev", "task-a", "needs_human_review", text=f"Reviewer notes: the key {review.written} is in the diff.",
                 content_secrets=[("evidence", "text", review)])
        gcp = self.plant("evidence text of a rejected run", "gcp-api-key")
        self.add("a-rej2", "task-a", "rejected", text=f"The patch hard-codes {gcp.written} in settings.py.",
                 content_secrets=[("evidence", "text", gcp)])

        # Task b: every default format in evidence text (the AWS key id and secret in one run).
        self.add("b-acc", "task-b", "accepted")
        self.add("b-rej", "task-b", "rejected")
        for rule in FAKES:
            if rule == "aws-secret-access-key":
                continue
            planted = [self.plant(f"evidence text ({rule})", rule)]
            if rule == "aws-access-token":
                planted.append(self.plant("evidence text (aws-secret-access-key)", "aws-secret-access-key"))
            quoted = "\n".join(p.written for p in planted)
            self.add(f"b-text-{rule}", "task-b", "accepted",
                     text=f"Review of {rule}: the config the run committed holds\n{quoted}\nso it must be rotated before merging.",
                     content_secrets=[("evidence", "text", p) for p in planted])

        # A token written as if it were a placeholder already: "<SECRET:" + token + ">".
        wrapped = self.plant("evidence text, a token inside placeholder brackets", "github-pat")
        self.add("b-wrapped", "task-b", "accepted", text=f"Already redacted, it says: <SECRET:{wrapped.written}>.",
                 content_secrets=[("evidence", "text", wrapped)])

        # Task c: file paths, source category, provenance strings, extra fields.
        file0, file1 = self.plant("source_files[0]", "github-pat"), self.plant("source_files[1]", "huggingface-access-token")
        self.add("c-file0", "task-c", "accepted", files=[f"notes/{file0.written}.txt", "src/app.py"],
                 content_secrets=[("evidence", "source_files[0]", file0)])
        self.add("c-file1", "task-c", "accepted", files=["src/app.py", f"notes/{file1.written}.txt"])
        category = self.plant("source_category", "npm-access-token")
        self.add("c-cat", "task-c", "accepted", source_category=f"scrum_reviews {category.written}")
        prov = {name: self.plant(f"score provenance.{name}", rule) for name, rule in
                (("source_file", "pypi-upload-token"), ("sig_hash", "stripe-access-token"), ("recorded_at", "aws-access-token"))}
        evidence_prov = {name: self.plant(f"evidence provenance.{name}", rule) for name, rule in
                         (("source_file", "gitlab-pat"), ("sig_hash", "slack-webhook-url"), ("recorded_at", "github-oauth"))}
        run = self.add("c-prov", "task-c", "accepted")
        run.score_provenance = {"source_file": f"runs/{prov['source_file'].written}.jsonl", "line_offset": run.offset,
                                "sig_hash": prov["sig_hash"].written, "recorded_at": prov["recorded_at"].written}
        run.evidence_provenance = {"source_file": f"runs/{evidence_prov['source_file'].written}.jsonl", "line_offset": run.offset,
                                   "sig_hash": evidence_prov["sig_hash"].written, "recorded_at": evidence_prov["recorded_at"].written}
        value, key = self.plant("an unknown extra field's value (score)", "npm-access-token"), \
            self.plant("an unknown extra field's key (score)", "github-app-token")
        evidence_value, evidence_key = self.plant("an unknown extra field's value (evidence)", "slack-user-token"), \
            self.plant("an unknown extra field's key (evidence)", "github-refresh-token")
        self.add("c-extra", "task-c", "rejected", score_extra={"debug_env": f"NPM_TOKEN={value.written}", key.written: "kept"},
                 evidence_extra={"env": {"HOOK": evidence_value.written}, evidence_key.written: ["kept"]})
        self.add("c-acc", "task-c", "accepted")
        self.add("c-rej", "task-c", "rejected")

        # Task d: ids (a secret in an id quarantines in every mode). Two run ids holding secrets of
        # two rules: redacted, they differ (of one rule they would be one id: see the test below).
        for label, rule in (("d-runid", "github-pat"), ("d-runid2", "github-oauth")):
            planted = self.plant(f"run id ({label})", rule)
            self.add(label, "task-d", "accepted", run_id=f"run-{planted.written}",
                     id_secrets=[("evidence", "run_id", planted), ("score", "evidence_run_id", planted)])
        task = self.plant("task id (evidence and score)", "gitlab-pat")
        self.add("d-task", f"task-{task.written}", "accepted",
                 id_secrets=[("evidence", "task_id", task), ("score", "evidence_task_id", task)])
        score_task = self.plant("score evidence_task_id only", "huggingface-access-token")
        self.add("d-scoretask", "task-d", "accepted", score_task=f"task-d-{score_task.written}",
                 id_secrets=[("score", "evidence_task_id", score_task)])
        self.add("d-acc", "task-d", "accepted")
        self.add("d-rej", "task-d", "rejected")

        # Task e: the same content twice; the later one's score holds a secret in its reasons
        # (its duplicate_content records carry the duplicate sample, which quotes no reason).
        same = "Both runs wrote exactly this review of the retry loop in the uploader."
        self.add("e-dup1", "task-e", "accepted", text=same)
        dup = self.plant("reasons[0] of a duplicate", "aws-access-token")
        self.add("e-dup2", "task-e", "accepted", text=same, reasons=[f"same as the other run, key {dup.written}"], duplicate=True)
        self.add("e-rej", "task-e", "rejected")

        # Task r: a run paired in phase 1, re-scored rejected in phase 2 with a secret in its reasons.
        self.rescored = self.add("r-run", "task-r", "accepted")
        self.add("r-acc", "task-r", "accepted")
        self.add("r-rej", "task-r", "rejected")
        rescore_secret = self.plant("reasons[0] of a re-score that retracts", "slack-webhook-url")
        self.rescore = {**self.rescored.score(), "category": "rejected", "scored_at": at(200),
                        "reasons": [f"{rescore_secret.written} is posted to in the diff", "retract it"]}

        # A score whose evidence never comes: missing_source_run_id once phase 2 moves stream time on.
        orphan = self.plant("reasons[0] of a score that times out at join", "npm-access-token")
        self._offset += 1
        self.orphan = {"schema_version": 1, "evidence_run_id": "run-orphan", "evidence_task_id": "task-o", "category": "accepted",
                       "reasons": [f"{orphan.written} in the log"], "scored_at": at(self._offset),
                       "provenance": {"source_file": "runs/scores.jsonl", "line_offset": self._offset, "sig_hash": "sc-orphan",
                                      "recorded_at": at(1)}}

        # Phase 2: a second, different evidence record for a-acc holding secrets (duplicate_id).
        pem, extra = self.plant("conflicting duplicate evidence text", "private-key"), \
            self.plant("conflicting duplicate evidence extra field", "stripe-access-token")
        self.conflict = {**self.runs["a-acc"].evidence(), "text": f"Second take:\n{pem.written}\n", "vault": extra.written}
        self.unkept |= {pem: 1, extra: 1}
        # Phase 2: clean runs an hour on, on every join partition, so the orphan times out.
        partitions: set[int] = set()
        n = 0
        while len(partitions) < 2 or n < 3:
            self._offset += 1
            late = Run(f"late-{n}", f"run-late-{n}", "task-late", "accepted", f"A later run, number {n}, of another task.",
                       self._offset, at(3600 + n))
            self.late.append(late)
            partitions.add(kafka_io.default_partition(late.run_id.encode(), 2))
            n += 1

        # Input that is not a valid record.
        def invalid(place: str, rule: str, form: str | None = None, times: int = 1) -> Secret:
            planted = self.plant(place, rule, form)
            self.unkept[planted] = times
            return planted

        token = invalid("undecodable evidence line (raw)", "github-pat")
        quoted = [invalid("undecodable evidence line, JSON-escaped assignment (raw)", "aws-secret-access-key", form)
                  for form in ('"aws_secret_access_key": "', 'export AWS_SECRET_ACCESS_KEY="', "aws_secret_access_key = ")]
        key_id = invalid("undecodable evidence line, after an escaped newline (raw)", "aws-access-token")
        line = orjson.dumps({"schema_version": 1, "run_id": "run-bad-utf8", "task_id": "task-x", "source_category": "x",
                             "text": f"token {token.written}\n" + "\n".join(q.written for q in quoted) + f"\n{key_id.written}"})
        self.bad_evidence.append(line[:-2] + b"\xff\xfe" + line[-2:])
        slack, key = invalid("truncated evidence line (raw)", "slack-legacy-token"), invalid("truncated evidence line (raw)", "private-key")
        line = orjson.dumps({"schema_version": 1, "run_id": "run-truncated", "text": f"{slack.written} {key.written} and more"})
        self.bad_evidence.append(line[:-10])
        listed, nested = invalid("non-object JSON line (raw)", "github-pat"), invalid("non-object JSON line (raw)", "stripe-access-token")
        self.bad_evidence.append(orjson.dumps([listed.written, {"k": nested.written}]))
        string = invalid("JSON string line in the scores (raw)", "huggingface-access-token")
        self.bad_scores.append(orjson.dumps(f"token {string.written}"))
        wrong_id, wrong_file = invalid("wrong-type evidence: run_id (and so the message key)", "gcp-api-key", times=2), \
            invalid("wrong-type evidence: source_files", "npm-access-token")
        self.bad_evidence.append({"schema_version": 1, "run_id": f"run-{wrong_id.written}", "task_id": "task-x",
                                  "source_category": "x", "text": 42, "source_files": [f"a/{wrong_file.written}"]})
        wrong_reason = invalid("wrong-type score: reasons", "anthropic-api-key")
        self.bad_scores.append({"schema_version": 1, "evidence_run_id": "run-wrong-2", "evidence_task_id": "task-x",
                                "category": "great", "reasons": [wrong_reason.written], "scored_at": at(5)})
        # An undecodable line longer than the raw bytes kept, a token across the cut.
        cut = invalid("undecodable line over 64 KiB, token across the cut (raw)", "github-pat")
        head = b'{"schema_version": 1, "run_id": "run-long", "text": "'
        filler = b"x" * (RAW_KEEP_BYTES - len(head) - len(cut.written) // 2)
        self.bad_evidence.append(head + filler + cut.written.encode() + b" " + b"y" * 1000 + b"\xff\"}")
        keyed = invalid("message key that is not the run id", "github-pat")
        value = Run("keyed", "run-keyed", "task-x", "accepted", "A clean text under a wrong key.", 0, at(0)).evidence()
        self.keyed_wrong = (f"key-{keyed.written}".encode(), orjson.dumps(value))
        tomb = invalid("key of a message with no value", "npm-access-token")
        self.tombstone_key = f"tomb-{tomb.written}".encode()
        # Not an input record: a key of the eval-sets topic the worker cannot read, which its log quotes.
        logged = self.plant("eval-sets key quoted in a worker log warning", "slack-webhook-url")
        self.bad_evalset_key = f"leaky/{logged.written}".encode()

    def all_runs(self) -> list[Run]:
        return [*self.runs.values(), *self.late]


# ------------------------------------------------------------------ reading back, the way readers read


class Leaks:
    def __init__(self, plants: Plants) -> None:
        self.automaton = plants.automaton()
        self.found: dict[tuple[str, str], set[str]] = {}  # (where, planted place) -> needles
        self.places_read: set[str] = set()

    def text(self, where: str, text: str) -> None:
        self.places_read.add(where.split(" ")[0])
        for _end, (needle, planted) in self.automaton.iter(text):
            self.found.setdefault((where, planted.place), set()).add(needle)

    def data(self, where: str, data: bytes | str | None) -> None:
        """Bytes or text as they are, and, if JSON, every string in the document."""
        if data is None:
            return
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        self.text(where, text)
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        self.document(where, document)

    def document(self, where: str, value: Any, key: str = "") -> None:
        if isinstance(value, str):
            self.text(where, value)
            if value[:1] in ("{", "[", '"'):
                try:
                    self.document(where, orjson.loads(value))
                except orjson.JSONDecodeError:
                    pass
            if key == "raw":
                self.text(f"{where} (raw decoded)", base64.b64decode(value).decode("utf-8", "replace"))
        elif isinstance(value, dict):
            for k, v in value.items():
                self.text(where, str(k))
                self.document(where, v, str(k))
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.document(where, item, key)
        elif value is not None:
            self.text(where, str(value))

    def report(self) -> str:
        return "\n".join(f"  {where}: the secret of {place} ({min(needles, key=len)!r}...)"
                         for (where, place), needles in sorted(self.found.items()))


async def every_message(settings: DistillSettings, name: str) -> list:
    """Every message of a topic as a read_uncommitted consumer sees it (aborted writes included)."""
    ends = await kafka_io.end_offsets(settings, [name])
    todo = {tp: end for tp, end in ends.items() if end > 0}
    messages = []
    if not todo:
        return messages
    reader = AIOKafkaConsumer(**kafka_io.client_options(settings), enable_auto_commit=False,
                              isolation_level="read_uncommitted", auto_offset_reset="earliest")
    async with kafka_io.started(reader):
        reader.assign(list(todo))
        await reader.seek_to_beginning(*todo)
        deadline = time.monotonic() + 60
        while todo:
            for tp, batch in (await reader.getmany(*todo, timeout_ms=500)).items():
                messages += [m for m in batch if m.offset < todo.get(tp, 0)]
            for tp in list(todo):
                if await reader.position(tp) >= todo[tp]:
                    del todo[tp]
            assert time.monotonic() < deadline, f"reading {name} did not finish"
    return messages


def env_of(settings: DistillSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILL_")}
    return env | {"DISTILL_BOOTSTRAP": settings.bootstrap, "DISTILL_TOPIC_PREFIX": settings.topic_prefix,
                  "DISTILL_DATA_DIR": str(settings.data_dir), "DISTILL_WEB_ENABLED": "false"}


def distill(settings: DistillSettings, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "streams", *args], env=env_of(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"distill {' '.join(args)}: {done.stderr[-3000:]}"
    return done


async def scrape(url: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:  # /health may answer 503: its text is read all the same
                    return await response.text()
            except aiohttp.ClientConnectionError:
                assert time.monotonic() < deadline, f"no /metrics at {url}"
                await asyncio.sleep(0.5)


def metric_values(text: str, name: str, label: str) -> dict[str, int]:
    from prometheus_client.parser import text_string_to_metric_families

    return {s.labels[label]: int(s.value) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


# ------------------------------------------------------------------ the test


@pytest.mark.parametrize("mode", ["quarantine", "redact"])
async def test_no_planted_secret_leaves_the_product(make_settings, tmp_path, mode):
    corpus = Corpus()
    web_port = free_port()
    settings: DistillSettings = make_settings(secrets=mode, join_timeout=900.0, web_enabled=True, web_port=web_port)
    runs = corpus.runs
    # Phase 1: every run, the invalid input, the orphan score, the message under a wrong key.
    evidence = write_jsonl(tmp_path / "p1" / "evidence.jsonl", [r.evidence() for r in runs.values()] + corpus.bad_evidence)
    scores = write_jsonl(tmp_path / "p1" / "scores.jsonl",
                         [r.score() for r in runs.values()] + [corpus.orphan] + corpus.bad_scores)
    metrics_text = health_text = ""
    async with running_worker(settings):
        await ingest(settings, [evidence], [scores])
        async with kafka_io.started(kafka_io.producer(settings)) as producer:
            await producer.send_and_wait(settings.topic("evidence"), corpus.keyed_wrong[1], key=corpus.keyed_wrong[0])
            await producer.send_and_wait(settings.topic("eval-sets"), b"not an item", key=corpus.bad_evalset_key)
            await producer.send_and_wait(settings.topic("scored-runs"), None, key=corpus.tombstone_key)
        await wait_caught_up(settings, 240)
        # Phase 2: the re-score, the conflicting evidence, runs an hour on.
        evidence = write_jsonl(tmp_path / "p2" / "evidence.jsonl", [corpus.conflict] + [r.evidence() for r in corpus.late])
        scores = write_jsonl(tmp_path / "p2" / "scores.jsonl", [corpus.rescore] + [r.score() for r in corpus.late])
        await ingest(settings, [evidence], [scores])
        await wait_caught_up(settings, 240)
        metrics_text = await scrape(f"http://127.0.0.1:{web_port}/metrics")
        health_text = await scrape(f"http://127.0.0.1:{web_port}/health")
    corpus.rescored.category, corpus.rescored.reasons = "rejected", corpus.rescore["reasons"]

    # Read back everything the product writes.
    leaks = Leaks(corpus.plants)
    topics = {}
    for name in WRITTEN_TOPICS:
        topics[name] = await every_message(settings, settings.topic(name))
        for m in topics[name]:
            where = f"topic:{name} offset {m.partition}:{m.offset}"
            leaks.data(f"{where} key", m.key)
            leaks.data(f"{where} value", m.value)
            for header, value in m.headers or ():
                leaks.text(f"{where} header", header)
                leaks.data(f"{where} header {header}", value)
    out = tmp_path / "export"
    await export(settings, out, list(KINDS), EVERYTHING)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    for path in files:
        relative = path.relative_to(out).as_posix()
        if path.suffix == ".parquet":
            for row in pq.read_table(path).to_pylist():
                leaks.document(f"export:{relative}", row)
        elif path.suffix == ".jsonl":
            for n, line in enumerate(path.read_bytes().splitlines()):
                leaks.data(f"export:{relative} line {n + 1}", line)
        else:
            leaks.data(f"export:{relative}", path.read_bytes())
    shown: list[bytes] = []
    await tail(settings, set(), None, True, False, lambda record, raw: shown.append(raw))
    for raw in shown:
        leaks.data("quarantine-tail(library)", raw)
    cli_tail = distill(settings, "quarantine", "tail", "--from-beginning", "--json")
    for n, line in enumerate(cli_tail.stdout.splitlines()):
        leaks.data(f"command:quarantine-tail-json line {n + 1}", line)
    leaks.text("command:quarantine-tail-json stderr", cli_tail.stderr)
    plain_tail = distill(settings, "quarantine", "tail", "--from-beginning")
    leaks.text("command:quarantine-tail", plain_tail.stdout + plain_tail.stderr)
    stats = (await collect(settings)).to_dict()
    leaks.data("stats(library)", orjson.dumps(stats, option=orjson.OPT_NON_STR_KEYS))
    cli_stats = distill(settings, "stats", "--json")
    leaks.data("command:stats-json", cli_stats.stdout)
    leaks.text("command:stats-json stderr", cli_stats.stderr)
    table = distill(settings, "stats")
    leaks.text("command:stats", table.stdout + table.stderr)
    log = (settings.data_dir / "worker.log").read_text(errors="replace")
    leaks.text("worker.log", log)
    assert "key b'leaky/<SECRET:slack-webhook-url>': not an evaluation item record" in log
    leaks.text("metrics", metrics_text)
    leaks.data("health", health_text)

    assert len(shown) == len(topics["quarantine"]) == len(cli_tail.stdout.splitlines())
    assert {"topic:rag-samples", "topic:quarantine", "topic:pair-candidates", "topic:dedup-candidates", "export:openai/sft.jsonl",
            "command:stats-json", "worker.log", "metrics", "health"} <= leaks.places_read
    assert {f.relative_to(out).as_posix() for f in files} >= {
        "rag/samples.parquet", "preference_trl/chosen_rejected.jsonl", "openai/preference.jsonl", "README.md", "receipt.json"}
    assert not leaks.found, f"planted secrets found in what the product writes ({mode}):\n{leaks.report()}"

    # The outcomes: gated places quarantine (errors: rule ids and offsets), the others give
    # samples with placeholders where the secret was.
    check_outcomes(corpus, mode, out, topics)
    check_books(corpus, mode, stats, metrics_text)


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def check_outcomes(corpus: Corpus, mode: str, out: Path, topics: dict) -> None:
    samples = {stage: {s["provenance"]["line_offset"]: s for s in lines(out / f"{stage}/samples.jsonl")} for stage in ("rag", "sft")}
    pairs = lines(out / "preference/chosen_rejected.jsonl")
    exported = lines(out / "quarantine/records.jsonl")
    records = [orjson.loads(m.value) for m in topics["quarantine"] if m.value is not None]
    assert len({r["id"] for r in records}) == len(exported)

    def of_run(rows: list[dict], run: Run, stage: str) -> list[dict]:
        return [r for r in rows if r["stage"] == stage and (r["source_provenance"] or {}).get("line_offset") == run.offset]

    excluded = set()
    for run in corpus.all_runs():
        expected = run.expected(mode)
        run_id = next(iter({r["run_id"] for stage in ("rag", "sft") for r in of_run(records, run, stage)}), run.run_id)
        if expected["preference"]:
            excluded.add(run_id)
        for stage in ("rag", "sft"):
            found = of_run(records, run, stage)
            if expected[stage] == "sample":
                assert run.offset in samples[stage], f"{run.label}: no {stage} sample"
                continue
            assert run.offset not in samples[stage], f"{run.label}: a {stage} sample, expected {expected[stage]}"
            assert [r["reason"] for r in found][-1:] == [expected[stage]], f"{run.label} at {stage}: {found}"
            assert of_run(exported, run, stage), f"{run.label}: its {stage} record is not in the export"
            record = found[-1]
            if expected[stage] == "secret_in_content":
                assert sorted(record["errors"]) == run.secret_errors(mode), record["errors"]
                assert all(__import__("re").match(ERROR, e) for e in record["errors"])
        preference = of_run(records, run, "preference")
        if expected["preference"]:
            assert [r["reason"] for r in preference] == ["secret_in_content"], f"{run.label}: {preference}"
            assert preference[0]["errors"][1:] == run.secret_errors(mode)
        else:
            assert not preference, f"{run.label}: {preference}"
    for pair in pairs:
        assert not {pair["chosen_run_id"], pair["rejected_run_id"]} & excluded, pair

    # Placeholders where the secrets were, in the samples of the places that do not gate.
    runs = corpus.runs
    assert samples["rag"][runs["c-file1"].offset]["source_files"][1] == \
        corpus.plants.secrets[[s.place for s in corpus.plants.secrets].index("source_files[1]")].redact(runs["c-file1"].files[1])
    assert samples["rag"][runs["c-cat"].offset]["source_category"].endswith("<SECRET:npm-access-token>")
    provenance = samples["sft"][runs["c-prov"].offset]["provenance"]
    assert provenance == {"source_file": "runs/<SECRET:pypi-upload-token>.jsonl", "line_offset": runs["c-prov"].offset,
                          "sig_hash": "<SECRET:stripe-access-token>", "recorded_at": "<SECRET:aws-access-token>"}
    reasons = {r["chosen_run_id"] + "|" + r["rejected_run_id"]: r["reason"] for r in pairs}
    acc, rej = runs["a-acc"], runs["a-rej"]
    assert reasons["run-a-acc|run-a-rej"] == (
        "chosen scored 'accepted' | rejected scored 'rejected' | "
        f"chosen-rationale: {_redacted(corpus, acc.reasons[0])[:80]} | "
        f"rejected-rationale: {_redacted(corpus, rej.reasons[0])[:80]}")
    assert "<SECRET:slack-webhook-url>" in reasons["run-r-acc|run-r-run"]  # the re-score's first reason
    retracted = [r for r in records if r["stage"] == "preference" and r["reason"] == "invalid_preference_pairing"]
    assert [r["source_record"] for r in retracted] == [
        {"task_id": "task-r", "chosen_run_id": "run-r-run", "rejected_run_id": "run-r-rej"}]
    rescored = [r for r in records if r["run_id"] == "run-r-run" and r["stage"] in ("rag", "sft")]
    assert all(r["errors"][0].startswith("retracted ") for r in rescored) and len(rescored) == 2
    assert all(r["source_record"]["reasons"][0].startswith("<SECRET:slack-webhook-url>") for r in rescored)
    if mode == "redact":
        for label in ("b-text-github-pat", "b-text-private-key", "b-text-aws-access-token", "b-text-url-password"):
            run = runs[label]
            text = run.text
            for _side, _path, planted in run.content_secrets:
                text = planted.redact(text)
            assert samples["rag"][run.offset]["text"] == text.strip()
            assert samples["sft"][run.offset]["messages"][1]["content"] == text.strip()
        prompt = samples["sft"][runs["c-file0"].offset]["messages"][0]["content"]
        assert prompt == "Task: task-c · file=notes/<SECRET:github-pat>.txt"

    # Records of every other kind, redacted.
    by_reason = {}
    for r in records:
        by_reason.setdefault((r["stage"], r["reason"]), []).append(r)
    [conflict] = by_reason[("input", "duplicate_id")]
    assert conflict["source_record"]["text"] == "Second take:\n<SECRET:private-key>\n"
    assert conflict["source_record"]["vault"] == "<SECRET:stripe-access-token>"
    [orphan] = by_reason[("join", "missing_source_run_id")]
    assert orphan["source_record"]["reasons"][0] == "<SECRET:npm-access-token> in the log"
    invalid = by_reason[("input", "schema_violation")]
    assert len(invalid) == 9
    raws = [base64.b64decode(r["raw"]).decode("utf-8", "replace") for r in invalid if r["raw"]]
    assert len(raws) == 5 and all("<SECRET:" in raw for raw in raws), raws
    [keyed] = [r for r in invalid if r["source"]["key"] and r["source"]["key"].startswith("key-")]
    assert keyed["source"]["key"] == "key-<SECRET:github-pat>"
    [tomb] = [r for r in invalid if r["source"]["key"] and r["source"]["key"].startswith("tomb-")]
    assert tomb["source"]["key"] == "tomb-<SECRET:npm-access-token>" and tomb["errors"][0].startswith("message has no value")
    dups = [r for r in records if r["reason"] == "duplicate_content" and r["stage"] in ("rag", "sft")]
    # A duplicate's record carries the duplicate sample (not its score, whose reasons held a secret).
    assert {r["stage"] for r in dups} == {"rag", "sft"} and all(
        r["source_record"]["run_id"] == "run-e-dup2" and "reasons" not in r["source_record"] for r in dups)
    extra = [r for r in records if r["stage"] == "rag" and r["run_id"] == "run-c-extra"][0]["source_record"]
    assert extra["debug_env"] == "NPM_TOKEN=<SECRET:npm-access-token>" and extra["<SECRET:github-app-token>"] == "kept"


def _redacted(corpus: Corpus, text: str) -> str:
    for planted in corpus.plants.secrets:
        text = planted.redact(text)
    return text


def check_books(corpus: Corpus, mode: str, stats: dict, metrics_text: str) -> None:
    runs = corpus.all_runs()
    assert stats["balanced"], stats["checks"]
    assert stats["valid_scores"] == len(runs) + 1 and stats["joined"] == len(runs)
    assert stats["join_timed_out"] == 1 and stats["pending_joins"] == 0
    expected = {stage: sum(run.expected(mode)[stage] == "sample" for run in runs) for stage in ("rag", "sft")}
    assert {s: stats["samples_live"][s] for s in ("rag", "sft")} == expected
    assert stats["invalid_input_messages"] == stats["input_quarantine_records"] == 9
    # Findings by rule: one for each time a secret is written in a record the runs table keeps
    # (its first evidence, its latest score), or in any other input message (key and value).
    want: dict[str, int] = {}
    kept = [r.evidence() for r in runs] + [r.score() for r in runs] + [corpus.orphan]
    for planted in corpus.plants.secrets:
        count = corpus.unkept.get(planted) or sum(_occurrences(record, planted.written) for record in kept)
        if count:
            want[planted.rule] = want.get(planted.rule, 0) + count
    assert stats["secret_findings"] == dict(sorted(want.items())), (stats["secret_findings"], want)
    assert metric_values(metrics_text, "distill_secret_findings_total", "rule") == dict(sorted(want.items()))


def _occurrences(record: Any, written: str) -> int:
    if isinstance(record, str):
        return record.count(written)
    if isinstance(record, dict):
        return sum(_occurrences(k, written) + _occurrences(v, written) for k, v in record.items())
    if isinstance(record, list):
        return sum(_occurrences(v, written) for v in record)
    return 0


async def test_runs_whose_ids_hold_secrets_of_one_rule_keep_a_record_each(make_settings, tmp_path):
    """Redacted, two run ids holding tokens of one rule are one string ("run-<SECRET:github-pat>"),
    but they are two runs: each must keep its own records (SPEC 7: one outcome per run and stage,
    nothing dropped without a record), in the quarantine topic and in the export of its live values."""
    plants = Plants("two run ids, one rule")
    runs = []
    for n in range(2):
        token = plants.plant(f"run id {n}", "github-pat")
        runs.append(Run(f"id-{n}", f"run-{token.written}", "task-ids", "accepted", f"Run {n} of a task whose ids hold tokens.",
                        n + 1, at(n + 1), id_secrets=[("evidence", "run_id", token), ("score", "evidence_run_id", token)]))
    runs += [Run("clean-acc", "run-clean-acc", "task-ids", "accepted", "A clean accepted run.", 3, at(3)),
             Run("clean-rej", "run-clean-rej", "task-ids", "rejected", "A clean rejected run.", 4, at(4))]
    settings = make_settings()
    evidence = write_jsonl(tmp_path / "evidence.jsonl", [r.evidence() for r in runs])
    scores = write_jsonl(tmp_path / "scores.jsonl", [r.score() for r in runs])
    async with running_worker(settings):
        await ingest(settings, [evidence], [scores])
        await wait_caught_up(settings, 180)
    leaks = Leaks(plants)
    records = []
    for m in await every_message(settings, settings.topic("quarantine")):
        leaks.data("topic:quarantine", m.value)
        records.append(orjson.loads(m.value))
    await export(settings, tmp_path / "export", ["quarantine"])
    exported = lines(tmp_path / "export" / "quarantine/records.jsonl")
    assert not leaks.found, leaks.report()
    found = {(stage, where): sorted((r["source_provenance"] or {}).get("line_offset") for r in rows
                                    if r["stage"] == stage and r["reason"] == "secret_in_content")
             for stage in ("rag", "sft", "preference") for rows, where in ((records, "topic"), (exported, "export"))}
    assert found == dict.fromkeys(found, [1, 2]), f"the records of the runs (by line_offset) at each stage and place: {found}"
