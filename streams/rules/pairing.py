"""Preference pairing (SPEC 6): the seed's pairing rules and a per-task window buffer, without Faust.

The agent keeps one ``PairWindow`` per (task, window start) in a table (``to_dict`` /
``from_dict``): ``admit``/``withdraw`` while the window is open, ``close`` once
``is_window_due`` (or it idled), ``rescore_closed`` when a run of a closed window is re-scored.
Everything here is a pure function of its arguments: same runs in, same bytes out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from itertools import islice, product
from typing import Any, Literal

from schemas import EvidenceRecord, PreferenceSample, Provenance, ScoredRun
from schemas.codec import Undecodable, validate
from schemas.preference_sample import pair_sig_hash, preference_sample_id
from schemas.scored_run import Category

PAIRABLE_AS = ("rejected", "partially_accepted")  # what a chosen (accepted) run is paired against


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


def pair_run_from(evidence: EvidenceRecord, score: ScoredRun) -> PairRun | None:
    """The joined run as a pair candidate, or None when it may not take part (SPEC 6).

    Out: either record without complete provenance (as the SPEC 4.2 gate reads it), or
    empty text after trimming. The task is the score's ``evidence_task_id``, as in the seed.
    """
    text = evidence.text.strip()
    if not text or not (evidence.provenance and evidence.provenance.is_complete):
        return None
    if not (score.provenance and score.provenance.is_complete):
        return None
    files, reasons = evidence.source_files, score.reasons
    return PairRun(
        run_id=score.evidence_run_id, task_id=score.evidence_task_id, category=score.category,
        scored_at=score.scored_at, scored_at_epoch=score.scored_at_epoch, text=text,
        first_file=files[0] if files and files[0] else None,
        first_reason=reasons[0] if reasons else None, provenance=score.provenance.contract_fields(),
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
    """Pair one task window's runs as SPEC 6 says; the flag is True for an insufficient window."""
    ordered = sorted(runs, key=lambda r: (r.scored_at_epoch, r.run_id))
    accepted = [r for r in ordered if r.category == "accepted"]
    candidates = _pair_up(accepted, [r for r in ordered if r.category == "rejected"], max_pairs)
    if not candidates:
        candidates = _pair_up(accepted, [r for r in ordered if r.category == "partially_accepted"], max_pairs)
    # The cap counts candidates before validation, as the seed does: a refused pair uses a slot.
    return [build_pair(c, r) for c, r in candidates], len(ordered) < 2 or not candidates


def pair_supported(chosen_category: str, rejected_category: str, rejected_paired_as: str) -> bool:
    """A pair stands while chosen is accepted and rejected keeps the category it was paired with."""
    return (
        chosen_category == "accepted"
        and rejected_category == rejected_paired_as
        and rejected_paired_as in PAIRABLE_AS
    )


@dataclass(frozen=True)
class Retraction:
    """An emitted pair that a re-score no longer supports: tombstone it and quarantine its id."""

    pair_id: str
    task_id: str
    chosen_run_id: str
    rejected_run_id: str
    errors: list[str]


@dataclass(frozen=True)
class PairWindow:
    """One task's tumbling window: its runs by id, whether it closed, and the pairs it emitted."""

    task_id: str
    start: float
    runs: dict[str, PairRun] = field(default_factory=dict)
    closed: bool = False
    # pair id -> (chosen run id, rejected run id, the rejected run's category when paired)
    emitted: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for the window table."""
        return {
            "task_id": self.task_id,
            "start": self.start,
            "runs": {k: r.to_dict() for k, r in self.runs.items()},
            "closed": self.closed,
            "emitted": {k: list(v) for k, v in self.emitted.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairWindow:
        """The inverse of ``to_dict``."""
        runs = {k: PairRun.from_dict(r) for k, r in d["runs"].items()}
        emitted = {k: (v[0], v[1], v[2]) for k, v in d["emitted"].items()}
        return cls(d["task_id"], float(d["start"]), runs, bool(d["closed"]), emitted)


def admit(window: PairWindow, run: PairRun) -> PairWindow:
    """The open window with the run added, or replaced by its re-score."""
    # A run of another task (a re-score that changed its task) is let in, not raised on:
    # build_pair refuses its pairs as task mismatches, so bad data becomes quarantine records.
    if window.closed:
        raise ValueError(f"window {window.task_id!r}@{window.start} is closed: use rescore_closed")
    return replace(window, runs={**window.runs, run.run_id: run})


def withdraw(window: PairWindow, run_id: str) -> PairWindow:
    """The open window without the run (it lost eligibility, or a re-score moved it elsewhere)."""
    if window.closed:
        raise ValueError(f"window {window.task_id!r}@{window.start} is closed: use rescore_closed")
    return replace(window, runs={k: r for k, r in window.runs.items() if k != run_id})


def close(
    window: PairWindow, max_pairs: int, already_emitted: Callable[[str], bool]
) -> tuple[PairWindow, list[Outcome], bool]:
    """Plan the window, skip samples already emitted, mark it closed and record what it emitted."""
    if window.closed:
        raise ValueError(f"window {window.task_id!r}@{window.start} is already closed")
    outcomes, insufficient = plan_window(window.runs.values(), max_pairs)
    fresh = [o for o in outcomes if not (isinstance(o, PreferenceSample) and already_emitted(o.id))]
    emitted = dict(window.emitted)
    for o in fresh:
        if isinstance(o, PreferenceSample):
            emitted[o.id] = (o.chosen_run_id, o.rejected_run_id, window.runs[o.rejected_run_id].category)
    return replace(window, closed=True, emitted=emitted), fresh, insufficient


def rescore_closed(
    window: PairWindow, run: PairRun | None, run_id: str
) -> tuple[PairWindow, list[Retraction]]:
    """Take a re-score of a closed window's run (None: not eligible any more); return the pairs it ends."""
    if not window.closed:
        raise ValueError(f"window {window.task_id!r}@{window.start} is open: use admit or withdraw")
    if run is not None and run.run_id != run_id:
        raise ValueError(f"run {run.run_id!r} given for run_id {run_id!r}")
    old = window.runs.get(run_id)
    if old is None:
        return window, []
    runs = {k: r for k, r in window.runs.items() if k != run_id} | ({run_id: run} if run else {})
    change = f"re-scored from '{old.category}' to '{run.category}'" if run else "no longer eligible"
    kept: dict[str, tuple[str, str, str]] = {}
    gone: list[Retraction] = []
    for pid, (c, r, paired_as) in window.emitted.items():
        supported = c in runs and r in runs and pair_supported(runs[c].category, runs[r].category, paired_as)
        if run_id in (c, r) and not supported:
            error = f"run {run_id!r} {change}: pair made as accepted x {paired_as} is no longer supported"
            gone.append(Retraction(pid, window.task_id, c, r, [error]))
        else:
            kept[pid] = (c, r, paired_as)
    return replace(window, runs=runs, emitted=kept), gone
