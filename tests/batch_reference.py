"""The batch reference of SPEC 4-6 and 11-12: what the datasets must be, computed in one pass over
the final state (each run's first evidence and latest score, the sets registered now), written
from the SPEC's wording with nothing of the streaming machinery. The convergence tests compare
the stream's outputs with it, whatever order the stream saw.

Samples and pairs are built by the firewall's and pairing's own builders (their shapes are
tested on their own); what is written again here is every decision: the gates, contamination by
word sequences, the winner of each content, which runs pair.
"""

import hashlib
import math
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

from schemas import EvidenceRecord, PreferenceSample, ScoredRun
from schemas.codec import encode
from streams.rules.firewall import GateOptions, Rejection, rag_outcome, sft_outcome
from streams.rules.pairing import build_pair, pair_run_from


def words(text: str) -> list[str]:
    """SPEC 12: NFKC, lower case, every character that is not a letter or digit a space, split."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c if unicodedata.category(c)[0] in "LN" else " " for c in text).split()


def sequences(field: str) -> list[tuple[str, ...]]:
    """SPEC 12: 13 words or more: every run of 13; 8 to 12: the field whole; shorter: nothing."""
    found = words(field)
    if len(found) >= 13:
        return [tuple(found[i:i + 13]) for i in range(len(found) - 12)]
    return [tuple(found)] if len(found) >= 8 else []


def overlaps(text: str, fields: list[str]) -> bool:
    have = words(text)
    runs = {tuple(have[i:i + n]) for n in range(8, 14) for i in range(len(have) - n + 1)}
    return any(seq in runs for field in fields for seq in sequences(field))


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def content_key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(normalise(p) for p in parts).encode()).hexdigest()


@dataclass(frozen=True)
class Expected:
    """The datasets (topic -> sample id -> JSON bytes), each joined run's outcome per stage
    ("sample" or the reason), and the runs kept out of pairing with the reason of their record."""

    datasets: dict[str, dict[str, bytes]]
    outcomes: dict[tuple[str, str], str]
    excluded: dict[str, str]


def expected(runs: list[tuple[dict, dict]], eval_fields: list[str], *, options: GateOptions = GateOptions(),
             max_pairs: int = 5, pair_window: float = 86400.0) -> Expected:
    """``runs``: (first evidence, latest score) of every joined run, as JSON objects."""
    candidates: dict[str, list] = {"rag": [], "sft": []}
    outcomes: dict[tuple[str, str], str] = {}
    windows: dict[tuple[str, float], list] = defaultdict(list)
    excluded: dict[str, str] = {}
    for evidence_obj, score_obj in runs:
        ev, sc = EvidenceRecord.model_validate(evidence_obj), ScoredRun.model_validate(score_obj)
        contaminated = overlaps(ev.text, eval_fields)
        for stage, gates in (("rag", rag_outcome), ("sft", sft_outcome)):
            outcome = gates(ev, sc, options, frozenset())  # gates 1-4 and the sample's shape
            if isinstance(outcome, Rejection):
                outcomes[stage, ev.run_id] = outcome.reason
            elif contaminated:
                outcomes[stage, ev.run_id] = "benchmark_contamination"
            else:
                parts = (outcome.text,) if stage == "rag" else tuple(m.content for m in outcome.messages)
                candidates[stage].append((content_key(*parts), sc.scored_at_epoch, outcome.id, ev.run_id, outcome))
        run = pair_run_from(ev, sc)
        if run is not None:
            if contaminated:
                excluded[run.run_id] = "benchmark_contamination"
            else:
                windows[run.task_id, math.floor(run.scored_at_epoch / pair_window)].append(run)
    datasets: dict[str, dict[str, bytes]] = {"rag-samples": {}, "sft-samples": {}, "preference-pairs": {}}
    for stage, found in candidates.items():
        kept: set[str] = set()
        for key, _created, sample_id, run_id, sample in sorted(found, key=lambda c: (c[1], c[2])):
            if key in kept:
                outcomes[stage, run_id] = "duplicate_content"
                continue
            kept.add(key)
            datasets[f"{stage}-samples"][sample_id] = encode(sample)
            outcomes[stage, run_id] = "sample"
    pairs = []
    for members in windows.values():
        ordered = sorted(members, key=lambda r: (r.scored_at_epoch, r.run_id))
        accepted = [r for r in ordered if r.category == "accepted"]
        chosen = [(a, b) for a in accepted for b in ordered if b.category == "rejected"][:max_pairs]
        if not chosen:
            chosen = [(a, b) for a in accepted for b in ordered if b.category == "partially_accepted"][:max_pairs]
        for a, b in chosen:
            sample = build_pair(a, b)
            if isinstance(sample, PreferenceSample):
                pairs.append((max(a.scored_at_epoch, b.scored_at_epoch), sample.id, sample))
    kept = set()
    for _created, pair_id, sample in sorted(pairs, key=lambda p: (p[0], p[1])):
        key = content_key(sample.prompt, sample.chosen, sample.rejected)
        if key not in kept:
            kept.add(key)
            datasets["preference-pairs"][pair_id] = encode(sample)
    return Expected(datasets, outcomes, excluded)
