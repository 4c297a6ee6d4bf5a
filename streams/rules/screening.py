"""What the content gates (SPEC 10-12) see of an input record, decided once when it arrives.

A valid input record is screened before anything is kept of it: every secret in any of its
strings is replaced by ``<SECRET:{rule id}>`` (and, opt-in, e-mails and public IPs by their
placeholders), and where each secret was is kept as a finding. The join keeps only the
redacted record, so every sample, pair, candidate and quarantine record built from it is
redacted by construction; the findings decide the ``secret_in_content`` gate. Run and task
ids are kept as they are by the PII redaction (ids must stay distinct); a secret in an id is
redacted like any other and always keeps the run out of every dataset (a redacted id would
merge runs).

The evidence text is also judged against the registered evaluation sets; the verdict is
kept with the run and judged again when the sets change (``streams.faust_app.agents.rejudge``).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

IDS = ("run_id", "task_id", "evidence_run_id", "evidence_task_id")
# Where a secret keeps a run out of the datasets (SPEC 10: its text or prompt; and its ids).
GATED = {
    "quarantine": {"evidence": {"text", "task_id", "run_id", "source_files[0]"},
                   "score": {"evidence_run_id", "evidence_task_id"}},
    "redact": {"evidence": {"task_id", "run_id"}, "score": {"evidence_run_id", "evidence_task_id"}},
    "off": {"evidence": set(), "score": set()},
}


class Scanner(Protocol):
    """``streams.rules.secrets.SecretScanner`` as the join uses it."""

    def redact_object(self, obj: Any) -> tuple[Any, list[tuple[str, Any]]]: ...


class Index(Protocol):
    """``streams.rules.decontamination.EvalIndex`` as the join uses it."""

    version: str

    def match(self, text: str) -> Any | None: ...


class _NoSets:
    version = ""

    def match(self, text: str) -> None:
        return None


NO_SETS: Index = _NoSets()


@dataclass(frozen=True)
class ContentGates:
    """The content gates' settings and tools; the defaults switch every one of them off."""

    secrets: Literal["quarantine", "redact", "off"] = "off"
    scanner: Scanner | None = None
    pii: Callable[[Any], Any] | None = None  # ``redact_pii_object`` when DISTILL_PII=redact
    index: Index = NO_SETS
    dedup: bool = False


NO_CONTENT_GATES = ContentGates()


@dataclass(frozen=True)
class Screened:
    """An input object as the join keeps it, with where its secrets were."""

    obj: dict[str, Any]
    findings: list[list]  # [path, rule id, start, end], offsets in the original string


def screen(obj: dict[str, Any], gates: ContentGates) -> Screened:
    """The object redacted (the same object when there is nothing to redact) and its findings."""
    findings: list[list] = []
    if gates.secrets != "off" and gates.scanner is not None:
        redacted, found = gates.scanner.redact_object(obj)
        findings = [[path, f.rule_id, f.start, f.end] for path, f in found]
        obj = redacted
    if gates.pii is not None:
        ids = {name: obj[name] for name in IDS if name in obj}
        rest = {name: value for name, value in obj.items() if name not in ids}
        redacted_rest = gates.pii(rest)
        if redacted_rest is not rest:
            obj = {name: ids[name] if name in ids else redacted_rest[name] for name in obj}
    return Screened(obj, findings)


def screen_source(source: dict[str, Any], gates: ContentGates) -> dict[str, Any]:
    """A message's coordinates as the join keeps them (``SourceMessage.to_dict``): its key is the
    run id, which may hold a secret, and travels on with the run (pair candidates, pair windows,
    dedup candidates), so it is redacted like the record's own strings."""
    key = source.get("key")
    if gates.secrets == "off" or gates.scanner is None or not key:
        return source
    redacted, found = gates.scanner.redact_object(key)
    return {**source, "key": redacted} if found else source


def secret_errors(mode: str, evidence_findings: list[list], score_findings: list[list]) -> tuple[str, ...]:
    """``secret_in_content`` errors for the findings in gated places: rule ids and offsets only."""
    gated = GATED[mode]
    errors = []
    for side, findings in (("evidence", evidence_findings), ("score", score_findings)):
        for path, rule_id, start, end in findings:
            if path in gated[side]:
                errors.append(f"{side} {path}: a secret of rule {rule_id!r} at characters {start}-{end}")
    return tuple(errors)


def judge(text: str, index: Index) -> dict[str, str] | None:
    """The evidence text against the registered evaluation sets: None, or the set it overlaps
    and the ``benchmark_contamination`` error naming the set, item, field and matched words."""
    found = index.match(text)
    return None if found is None else {"set": found.set_name, "error": found.error()}
