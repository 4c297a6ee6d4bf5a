"""The rows of every exported file, made from the records of the output topics: pure functions.

A *layout* is one shape of row, named as the dataset card names its config. The four of
SPEC 9 are the topic records as they are (``rag``, ``sft``, ``preference``), and the
quarantine record with its varying fields fixed (``quarantine``); the trainer forms are
made from them:

    topic              layout              file (beside it: .parquet with --format)
    rag-samples        rag                 rag/samples.jsonl
    sft-samples        sft                 sft/samples.jsonl
                       sft_openai          openai/sft.jsonl              (JSONL only)
    preference-pairs   preference          preference/chosen_rejected.jsonl
                       preference_trl      preference_trl/chosen_rejected.jsonl
                       preference_openai   openai/preference.jsonl       (JSONL only)
    quarantine         quarantine          quarantine/records.jsonl

Every function takes the record as decoded from its topic (a dict, as SPEC 5 and 7 shape
it) and returns the row; none reads a clock, so the files are a function of the topics.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas._base import parse_rfc3339

Row = dict[str, Any]

KINDS = ("rag", "sft", "preference", "quarantine")
TOPICS = {"rag": "rag-samples", "sft": "sft-samples", "preference": "preference-pairs", "quarantine": "quarantine"}


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


def as_is(record: Row) -> Row:
    return record


def preference_trl(record: Row) -> Row:
    """TRL's conversational preference row: the prompt as a list of one user message, each
    answer as a list of one assistant message (the SFT file's message shape); every other
    column as in the plain file."""
    return record | {
        "prompt": [user(record["prompt"])],
        "chosen": [assistant(record["chosen"])],
        "rejected": [assistant(record["rejected"])],
    }


def sft_openai(record: Row) -> Row:
    """An OpenAI chat fine-tuning line: ``messages`` and nothing else."""
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in record["messages"]]}


def preference_openai(record: Row) -> Row:
    """An OpenAI preference (DPO) fine-tuning line: the prompt as ``input.messages``, the
    chosen and rejected answers as one assistant message each."""
    return {
        "input": {"messages": [user(record["prompt"])]},
        "preferred_output": [assistant(record["chosen"])],
        "non_preferred_output": [assistant(record["rejected"])],
    }


def utc_time(value: Any) -> datetime | None:
    """An RFC 3339 string as a UTC datetime; None for anything else ("" included)."""
    if not isinstance(value, str):
        return None
    try:
        return parse_rfc3339(value).astimezone(UTC)
    except ValueError:
        return None


def utc_text(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; microseconds only where there are some."""
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def quarantine(record: Row) -> Row:
    """The quarantine record with the fields whose type varies between records fixed.

    ``source_record`` is the original input object, whose fields have whatever types the bad
    input had: in the file it is that JSON as a string (compact, keys in their order), so
    Arrow readers see one type. The
    time in ``source_provenance.recorded_at`` is the input's, and inputs may leave it empty
    (that is what ``missing_provenance`` catches) or hold something else: in the file it is
    that time in UTC, or null. The original is in ``source_record``.
    """
    original = record["source_record"]
    provenance = record["source_provenance"]
    if provenance is not None:
        moment = utc_time(provenance.get("recorded_at"))
        provenance = provenance | {"recorded_at": utc_text(moment) if moment else None}
    return record | {
        "source_record": None if original is None else orjson.dumps(original).decode(),
        "source_provenance": provenance,
    }


@dataclass(frozen=True)
class Layout:
    """One file's shape: the config name of the card, its topic's kind, where it goes."""

    name: str
    kind: str
    stem: str  # path without the extension
    to_row: Callable[[Row], Row]
    columnar: bool = True  # False: JSONL only (the OpenAI files: that endpoint takes JSONL)
    summary: str = ""

    def path(self, extension: str) -> str:
        return f"{self.stem}.{extension}"


LAYOUTS = {layout.name: layout for layout in (
    Layout("rag", "rag", "rag/samples", as_is, summary="RagSample v1 records (SPEC 5), one retrieval document per run."),
    Layout("sft", "sft", "sft/samples", as_is,
           summary="SftSample v1 records (SPEC 5): `messages`, a user prompt and the assistant answer."),
    Layout("sft_openai", "sft", "openai/sft", sft_openai, columnar=False,
           summary="OpenAI chat fine-tuning lines: `messages` only."),
    Layout("preference", "preference", "preference/chosen_rejected", as_is,
           summary="PreferenceSample v1 records (SPEC 5): `prompt`, `chosen`, `rejected` as plain strings."),
    Layout("preference_trl", "preference", "preference_trl/chosen_rejected", preference_trl,
           summary="TRL's conversational preference form: `prompt` a list of user messages, "
                   "`chosen`/`rejected` lists of assistant messages; other columns as in `preference`."),
    Layout("preference_openai", "preference", "openai/preference", preference_openai, columnar=False,
           summary="OpenAI preference (DPO) fine-tuning lines: `input.messages`, `preferred_output`, "
                   "`non_preferred_output`."),
    Layout("quarantine", "quarantine", "quarantine/records", quarantine,
           summary="QuarantineRecord v1 (SPEC 7), `source_record` as a JSON string."),
)}


def layouts_for(kinds: list[str], preference_format: str, openai: bool) -> list[Layout]:
    """The layouts an export writes, in card order: per kind, its plain then its trainer forms."""
    chosen = {"rag", "sft", "quarantine"}
    chosen |= {"preference", "preference_trl"} if preference_format == "both" else {
        "plain": {"preference"}, "trl": {"preference_trl"}}[preference_format]
    if openai:
        chosen |= {"sft_openai", "preference_openai"}
    return [layout for layout in LAYOUTS.values() if layout.name in chosen and layout.kind in kinds]


def jsonl(rows: list[Row]) -> bytes:
    """Compact JSON, one row a line, keys in their order: the same rows give the same bytes."""
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)
