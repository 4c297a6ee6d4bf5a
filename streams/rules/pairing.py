"""Preference pairing (SPEC 6): the seed's pairing rules and a per-task window buffer, without Faust.

The agent keeps one ``PairWindow`` per (task, window start) in a table (``to_dict`` /
``from_dict``): ``admit``/``withdraw`` while the window is open, ``close`` once
``is_window_due`` (or it idled), ``change_closed`` when a run of a closed window changes.
A closed window's pairs are always the plan over its current eligible runs (SPEC 12,
convergence of pairs): a change plans it again, and the difference is what is sent. A run
excluded for a secret or a benchmark overlap stays in its window, out of the plan, and gets
one record. Everything here is a pure function of its arguments: same runs in, same bytes out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from itertools import islice, product
from typing import Any, Literal

from schemas import EvidenceRecord, PreferenceSample, Provenance, ScoredRun
from schemas.codec import Undecodable, encode, validate
from schemas.preference_sample import pair_sig_hash, preference_sample_id
from schemas.scored_run import Category

ContentKey = Callable[[PreferenceSample], str] | None  # a pair's dedup key; None: dedup off


@dataclass(frozen=True)
class PairRun:
    """One joined run as the pair buffer keeps it."""

    run_id: str
    task_id: str
    category: Category
    scored_at: str  # exactly as in the score: created_at copies it
    scored_at_epoch: float
    text: str  # the evidence text, trimmed
    first_file: str | None  # source_files[0] when present and non-empty
    first_reason: str | None  # reasons[0] of the score when the list is not empty
    provenance: Provenance  # the score's, complete
    # {"reason": secret_in_content | benchmark_contamination, "errors": [...]}: in the window,
    # out of its plan (SPEC 10, 12); None: eligible.
    exclusion: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for the window table (not to be changed: it is kept and shared)."""
        return self._as_dict

    @cached_property
    def _as_dict(self) -> dict[str, Any]:
        # A window's row holds all its runs and is written again at every commit that
        # changes it: the dump of each run's provenance is made once, not at every write.
        plain = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**plain, "provenance": self.provenance.model_dump(mode="json")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairRun:
        """The inverse of ``to_dict``."""
        run = cls(**{**d, "provenance": Provenance.model_validate(d["provenance"])})
        run.__dict__["_as_dict"] = d  # what to_dict gives back (what made ``d``, read again)
        return run


def pair_run_from(evidence: EvidenceRecord, score: ScoredRun, exclusion: dict | None = None) -> PairRun | None:
    """The joined run as a pair candidate, or None when it may not take part (SPEC 6).

    Out: either record without complete provenance (as the SPEC 4.2 gate reads it), or
    empty text after trimming. The task is the score's ``evidence_task_id``, as in the seed; the
    run id the evidence's (the same, unless it held a secret: ``join._own_id``).
    ``exclusion``: why a run that would take part is kept out of the plan (its record says so).
    """
    text = evidence.text.strip()
    if not text or not (evidence.provenance and evidence.provenance.is_complete):
        return None
    if not (score.provenance and score.provenance.is_complete):
        return None
    files, reasons = evidence.source_files, score.reasons
    return PairRun(
        run_id=evidence.run_id, task_id=score.evidence_task_id, category=score.category,
        scored_at=score.scored_at, scored_at_epoch=score.scored_at_epoch, text=text,
        first_file=files[0] if files and files[0] else None,
        first_reason=reasons[0] if reasons else None, provenance=score.provenance.contract_fields(),
        exclusion=exclusion,
    )


def window_start(scored_at_epoch: float, pair_window: float) -> float:
    """Start of the tumbling window holding this instant: windows align on multiples of pair_window."""
    start = float(math.floor(scored_at_epoch / pair_window) * pair_window)
    while start > scored_at_epoch:  # guard against rounding in the division
        start -= pair_window
    while start + pair_window <= scored_at_epoch:
        start += pair_window
    return start


def window_key(task_id: str, start: float) -> str:
    """The pair window row of a task's window starting at ``start``: ``"{task_id}|{start}"``."""
    return f"{task_id}|{start:.0f}"


def window_closes_at(start: float, pair_window: float, pair_grace: float) -> float:
    """The stream time that, once passed (strictly), closes the window."""
    return start + pair_window + pair_grace


def least_watermark(marks: dict[str, float], partitions: int) -> float:
    """A pair partition's stream time: the least watermark of the join partitions feeding
    it (``marks``: source partition, as a string, -> watermark), -inf until all spoke."""
    sources = [marks.get(str(p)) for p in range(partitions)]
    return float("-inf") if None in sources else min(sources)


def is_window_due(start: float, pair_window: float, pair_grace: float, stream_time: float) -> bool:
    """True when stream time has passed the window's end plus grace."""
    return stream_time > window_closes_at(start, pair_window, pair_grace)


@dataclass(frozen=True)
class PairRejection:
    """A candidate pair that is not a sample, with the quarantine reason."""

    reason: Literal["self_pairing", "invalid_preference_pairing", "schema_violation"]
    errors: list[str]
    pair_id: str
    task_id: str  # the chosen run's
    chosen_run_id: str
    rejected_run_id: str


Outcome = PreferenceSample | PairRejection


def build_pair(chosen: PairRun, rejected: PairRun) -> Outcome:
    """The seed's buildPair: a PreferenceSample (SPEC 5), or why the pair is refused."""
    task_id = chosen.task_id
    pair_id = preference_sample_id(chosen.run_id, rejected.run_id, task_id)

    def refuse(reason: Any, errors: list[str]) -> PairRejection:
        return PairRejection(reason, errors, pair_id, task_id, chosen.run_id, rejected.run_id)

    if chosen.run_id == rejected.run_id:
        return refuse("self_pairing", [f"same run_id {chosen.run_id!r} on both sides: self-pairing"])
    if task_id != rejected.task_id:
        mismatch = f"task_id mismatch ({task_id!r} vs {rejected.task_id!r})"
        return refuse("invalid_preference_pairing", [mismatch])
    if not chosen.text or not rejected.text:
        return refuse("invalid_preference_pairing", ["empty text in chosen or rejected"])
    if chosen.text == rejected.text:
        return refuse("invalid_preference_pairing", ["chosen and rejected texts identical"])
    prompt = f"Task: {task_id}" + (f" · file={chosen.first_file}" if chosen.first_file else "")
    parts = [f"chosen scored '{chosen.category}'", f"rejected scored '{rejected.category}'"]
    # The seed's slice(0, 80) counts UTF-16 code units; this counts Python characters (code
    # points), so a reason with astral characters (emoji) keeps a few more, never half a pair.
    if chosen.first_reason is not None:
        parts.append(f"chosen-rationale: {chosen.first_reason[:80]}")
    if rejected.first_reason is not None:
        parts.append(f"rejected-rationale: {rejected.first_reason[:80]}")
    later = rejected if rejected.scored_at_epoch > chosen.scored_at_epoch else chosen  # tie: chosen's
    prov = chosen.provenance
    built = validate(PreferenceSample, {
        "id": pair_id, "prompt": prompt, "chosen": chosen.text, "rejected": rejected.text,
        "reason": " | ".join(parts), "chosen_run_id": chosen.run_id, "rejected_run_id": rejected.run_id,
        "created_at": later.scored_at,
        "provenance": {"source_file": prov.source_file, "line_offset": prov.line_offset,
                       "sig_hash": pair_sig_hash(chosen.run_id, rejected.run_id),
                       "recorded_at": prov.recorded_at},
    })
    return refuse("schema_violation", built.errors) if isinstance(built, Undecodable) else built


def _pair_up(a: list[PairRun], b: list[PairRun], cap: int) -> list[tuple[PairRun, PairRun]]:
    """Every a x every b, a outer, at most ``cap`` candidates (the seed's pairUp)."""
    return list(islice(product(a, b), cap))


def plan_window(runs: Iterable[PairRun], max_pairs: int) -> tuple[list[Outcome], bool]:
    """Pair one task window's eligible runs as SPEC 6 says; the flag is True for an insufficient window."""
    ordered = sorted((r for r in runs if r.exclusion is None), key=lambda r: (r.scored_at_epoch, r.run_id))
    accepted = [r for r in ordered if r.category == "accepted"]
    candidates = _pair_up(accepted, [r for r in ordered if r.category == "rejected"], max_pairs)
    if not candidates:
        candidates = _pair_up(accepted, [r for r in ordered if r.category == "partially_accepted"], max_pairs)
    # The cap counts candidates before validation, as the seed does: a refused pair uses a slot.
    return [build_pair(c, r) for c, r in candidates], len(ordered) < 2 or not candidates


@dataclass(frozen=True)
class Retraction:
    """An emitted pair no longer in its window's plan: tombstone it and quarantine its id."""

    pair_id: str
    task_id: str
    chosen_run_id: str
    rejected_run_id: str
    content_key: str | None  # its dedup group's key; None: published straight to its topic
    errors: list[str]


@dataclass(frozen=True)
class PlanChanges:
    """What planning a closed window again sends: the difference from what it sent before."""

    emit: list[PreferenceSample] = field(default_factory=list)  # new pairs, or pairs whose content changed
    encoded: dict[str, bytes] = field(default_factory=dict)  # each emitted pair as published, by id
    retract: list[Retraction] = field(default_factory=list)
    refused: list[PairRejection] = field(default_factory=list)  # pairs refused, not recorded before
    excluded: list[PairRun] = field(default_factory=list)  # excluded runs, not recorded before
    insufficient: bool = False


@dataclass(frozen=True)
class PairWindow:
    """One task's tumbling window: its runs by id, whether it closed, and what its plan sent."""

    task_id: str
    start: float
    runs: dict[str, PairRun] = field(default_factory=dict)
    closed: bool = False
    # pair id -> (chosen run id, rejected run id, digest of the sample sent, dedup content key or None)
    emitted: dict[str, tuple[str, str, str, str | None]] = field(default_factory=dict)
    # "{reason}|{subject}" of every record a plan of this window sent (refused pairs, excluded runs)
    recorded: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for the window table."""
        return {
            "task_id": self.task_id,
            "start": self.start,
            "runs": {k: r.to_dict() for k, r in self.runs.items()},
            "closed": self.closed,
            "emitted": {k: list(v) for k, v in self.emitted.items()},
            "recorded": sorted(self.recorded),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairWindow:
        """The inverse of ``to_dict``. Rows of versions before re-planning kept (chosen, rejected,
        category): their pairs count as sent with an unknown digest, straight to the topic."""
        runs = {k: PairRun.from_dict(r) for k, r in d["runs"].items()}
        emitted = {k: (v[0], v[1], v[2], v[3]) if len(v) == 4 else (v[0], v[1], "", None) for k, v in d["emitted"].items()}
        return cls(d["task_id"], float(d["start"]), runs, bool(d["closed"]), emitted, frozenset(d.get("recorded", ())))


def admit(window: PairWindow, run: PairRun) -> PairWindow:
    """The open window with the run added, or replaced by its re-score."""
    # A run of another task (a re-score that changed its task) is let in, not raised on:
    # build_pair refuses its pairs as task mismatches, so bad data becomes quarantine records.
    if window.closed:
        raise ValueError(f"window {window.task_id!r}@{window.start} is closed: use change_closed")
    return replace(window, runs={**window.runs, run.run_id: run})


def withdraw(window: PairWindow, run_id: str) -> PairWindow:
    """The open window without the run (it lost eligibility, or a re-score moved it elsewhere)."""
    if window.closed:
        raise ValueError(f"window {window.task_id!r}@{window.start} is closed: use change_closed")
    return replace(window, runs={k: r for k, r in window.runs.items() if k != run_id})


def close(window: PairWindow, max_pairs: int, content_key: ContentKey = None) -> tuple[PairWindow, PlanChanges]:
    """Plan the window and mark it closed. ``content_key(sample)``: the dedup key its pairs are
    sent under (None: dedup off, straight to the topic)."""
    if window.closed:
        raise ValueError(f"window {window.task_id!r}@{window.start} is already closed")
    return _plan_again(replace(window, closed=True), max_pairs, "", content_key)


def change_closed(
    window: PairWindow, run: PairRun | None, run_id: str, max_pairs: int, content_key: ContentKey = None
) -> tuple[PairWindow, PlanChanges]:
    """A run of the closed window changed (None: not eligible any more): plan it again."""
    if not window.closed:
        raise ValueError(f"window {window.task_id!r}@{window.start} is open: use admit or withdraw")
    if run is not None and run.run_id != run_id:
        raise ValueError(f"run {run.run_id!r} given for run_id {run_id!r}")
    old = window.runs.get(run_id)
    if old is None:
        return window, PlanChanges()
    runs = {k: r for k, r in window.runs.items() if k != run_id} | ({run_id: run} if run else {})
    return _plan_again(replace(window, runs=runs), max_pairs, _change(run_id, old, run), content_key)


def _change(run_id: str, old: PairRun, new: PairRun | None) -> str:
    if new is None:
        return f"run {run_id!r} is no longer eligible"
    if new.exclusion is not None:
        return f"run {run_id!r} is now excluded ({new.exclusion['reason']})"
    if old.category != new.category:
        return f"run {run_id!r} re-scored from '{old.category}' to '{new.category}'"
    return f"run {run_id!r} changed"


def _plan_again(window: PairWindow, max_pairs: int, change: str, content_key: ContentKey) -> tuple[PairWindow, PlanChanges]:
    outcomes, insufficient = plan_window(window.runs.values(), max_pairs)
    emit, encoded, emitted = [], {}, {}
    for sample in (o for o in outcomes if isinstance(o, PreferenceSample)):
        value = encode(sample)
        digest = hashlib.sha256(value).hexdigest()[:32]
        before = window.emitted.get(sample.id)
        unchanged = before is not None and before[2] == digest
        if not unchanged:
            emit.append(sample)
            encoded[sample.id] = value
        # the same digest is the same content, so the same content key: not worked out again
        key = None if content_key is None else before[3] if unchanged and before[3] else content_key(sample)
        emitted[sample.id] = (sample.chosen_run_id, sample.rejected_run_id, digest, key)
    retract = [
        Retraction(pid, window.task_id, c, r, key, [f"{change}: the window's plan no longer has this pair"])
        for pid, (c, r, _digest, key) in sorted(window.emitted.items()) if pid not in emitted
    ]
    recorded = set(window.recorded)
    refused = [o for o in outcomes if isinstance(o, PairRejection) and f"{o.reason}|{o.pair_id}" not in recorded]
    excluded = [run for _, run in sorted(window.runs.items())
                if run.exclusion is not None and f"{run.exclusion['reason']}|{run.run_id}" not in recorded]
    recorded |= {f"{o.reason}|{o.pair_id}" for o in refused}
    recorded |= {f"{run.exclusion['reason']}|{run.run_id}" for run in excluded}
    window = replace(window, emitted=emitted, recorded=frozenset(recorded))
    return window, PlanChanges(emit, encoded, retract, refused, excluded, insufficient)
