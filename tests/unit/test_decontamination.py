"""SPEC 12's words and word sequences, and the index that finds them in a text."""

import random
import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.rules.decontamination import Contamination, EvalIndex, EvalItem, words_of
from tests.humaneval import FIELDS, humaneval_tasks

WORDS = [f"w{i}" for i in range(20)]


def item(text: str, set_name: str = "bench", item_id: str = "1", field: str = "question") -> EvalItem:
    return EvalItem(set_name, item_id, {field: text})


def words(n: int, start: int = 0) -> str:
    return " ".join(WORDS[start:start + n])


# ---------------------------------------------------------------------------- words


def test_punctuation_and_white_space_separate_words():
    assert words_of("Hello, world!  It's\t3.14\n--ok--") == ["hello", "world", "it", "s", "3", "14", "ok"]
    assert words_of("") == words_of(" \n\t.,;") == []


def test_case_is_folded():
    assert words_of("ABC Def gHI") == ["abc", "def", "ghi"]
    assert words_of("ÉCOLE Straße") == ["école", "straße"]


def test_nfkc_folds_fullwidth_ligatures_superscripts_and_compatibility_numerals():
    assert words_of("ＡＢＣ１２３") == ["abc123"]
    assert words_of("ﬁle ﬂow") == ["file", "flow"]
    assert words_of("x² Ⅻ") == ["x2", "xii"]


def test_accents_composed_or_not_are_one_word():
    assert words_of("café") == words_of("cafe\u0301") == ["café"]


def test_letters_of_every_script_and_their_digits_are_words():
    assert words_of("東京タワー は 高い") == ["東京タワー", "は", "高い"]
    assert words_of("число ١٢٣ ५") == ["число", "١٢٣", "५"]


def test_marks_that_stay_marks_and_underscores_separate():
    # Devanagari vowel signs are marks (Mc/Mn), not letters: SPEC 12 makes them spaces.
    assert words_of("हिन्दी") == ["ह", "न", "द"]
    assert words_of("snake_case __init__") == ["snake", "case", "init"]


def spec_words(text: str) -> list[str]:
    """SPEC 12 read literally, a character at a time."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(c if unicodedata.category(c)[0] in "LN" else " " for c in folded).split()


def test_the_words_of_every_code_point_are_those_of_the_spec():
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    assert words_of(everything) == spec_words(everything)
    # Short non-ASCII runs between ASCII letters, and no capital sigma (which lower-cases a text whole).
    between_ascii = "a".join(c for c in map(chr, range(0x80, sys.maxunicode + 1, 7))
                             if "\u03a3" not in unicodedata.normalize("NFKC", c))
    assert words_of(between_ascii) == spec_words(between_ascii)


def test_a_capital_sigma_lowers_by_its_neighbours_as_in_the_whole_text():
    for text in ("ΟΔΟΣ", "ΟΔΟΣ'S", "AΣb", "xΣ.", "Σ", "ΑΣ—b", "İSTANBUL Kelvin \u212a"):
        assert words_of(text) == spec_words(text), text


# ---------------------------------------------------------------------------- what is indexed


@pytest.mark.parametrize("n, sequences", [(7, 0), (8, 1), (12, 1), (13, 1), (14, 2), (20, 8)])
def test_a_field_contributes_its_13_word_runs_or_itself_whole(n, sequences):
    assert len(EvalIndex.build([item(words(n))])) == sequences


def test_short_fields_match_nothing():
    index = EvalIndex.build([item(words(7))])
    assert index.match(words(7)) is None
    assert index.match(f"before {words(7)} after") is None


@pytest.mark.parametrize("n", [8, 12])
def test_a_field_of_8_to_12_words_matches_only_whole(n):
    index = EvalIndex.build([item(words(n))])
    found = index.match(f"Look: {words(n)}, again.")
    assert found == Contamination("bench", "1", "question", words(n))
    assert index.match(words(n - 1)) is None
    assert index.match(words(n - 1, start=1)) is None


@pytest.mark.parametrize("n", [13, 14])
def test_a_long_field_matches_on_any_13_consecutive_words(n):
    index = EvalIndex.build([item(words(n))])
    for start in range(n - 12):
        assert index.match(f"x {words(13, start)} y").words == words(13, start)
    assert index.match(words(12)) is None
    assert index.match(words(12, start=n - 12)) is None
    assert index.match(words(6) + " gap " + words(7, start=6)) is None


def test_matches_across_line_breaks_punctuation_and_case():
    solution = "def add(a, b):\n    # the sum of two numbers, as always\n    return a + b\n"
    index = EvalIndex.build([item(solution, field="canonical_solution")])
    text = "Reviewer: please look at\nDEF ADD (A,B): -- the SUM of two\nnumbers; as always... return A+B! Thanks."
    found = index.match(text)
    assert found and found.words == "def add a b the sum of two numbers as always return a"


def test_the_earliest_match_wins_and_ties_go_by_set_item_and_field():
    shared = words(13)
    items = [
        item(shared, "zeta", "1"), item(shared, "alpha", "9"), item(shared, "alpha", "10", "b"),
        item(shared, "alpha", "10", "a"), item(words(13, start=5), "aaa", "0"),
    ]
    text = f"{words(13)} {words(5, start=13)}"  # the first item's run starts at word 0, aaa's at 5
    for _ in range(5):
        random.shuffle(items)
        index = EvalIndex.build(items)
        assert index.match(text) == Contamination("alpha", "10", "a", shared)
        assert index.match(words(13, start=5)).set_name == "aaa"


def test_an_empty_index_matches_nothing_and_has_no_version():
    index = EvalIndex.build([])
    assert (len(index), index.sets, index.version) == (0, {}, "")
    assert index.match(words(20)) is None


def test_sets_count_items_also_those_without_sequences():
    index = EvalIndex.build([item(words(3), "a", "1"), item(words(13), "a", "2"), item(words(9), "b", "x")])
    assert index.sets == {"a": 2, "b": 1}
    assert len(index) == 2


def test_contamination_error_names_set_item_field_and_words():
    line = Contamination("humaneval", "HumanEval/0", "prompt", "for idx elem in").error()
    for part in ("humaneval", "HumanEval/0", "prompt", "for idx elem in"):
        assert part in line
    assert "\n" not in line


# ---------------------------------------------------------------------------- version


def test_version_ignores_item_order_and_follows_every_content_change():
    items = [item(words(13), "a", "1"), item(words(9), "a", "2", "answer"), item(words(3), "b", "7")]
    version = EvalIndex.build(items).version
    assert version and EvalIndex.build(list(reversed(items))).version == version
    changed = [
        [item(words(13), "c", "1"), *items[1:]],  # set name
        [item(words(13), "a", "3"), *items[1:]],  # item id
        [item(words(13), "a", "1", "other"), *items[1:]],  # field name
        [item(words(13) + "!", "a", "1"), *items[1:]],  # text, even where the words are the same
        items[1:],  # an item fewer
        [*items, item("", "b", "8")],  # an item more
    ]
    versions = {EvalIndex.build(c).version for c in changed}
    assert len(versions) == len(changed) and version not in versions


# ---------------------------------------------------------------------------- the naive reference


def reference(items: list[EvalItem], text: str) -> Contamination | None:
    """SPEC 12 read literally: sets of word tuples, every position of the text, every length."""
    sequences = {}
    for it in items:
        for field, value in it.fields.items():
            w = words_of(value)
            runs = {tuple(w[i:i + 13]) for i in range(len(w) - 12)} if len(w) >= 13 else (
                {tuple(w)} if 8 <= len(w) <= 12 else set())
            sequences.setdefault((it.set_name, it.item_id, field), set()).update(runs)
    t = words_of(text)
    for start in range(len(t)):
        found = sorted((key, n) for key, runs in sequences.items() for n in range(8, 14)
                       if start + n <= len(t) and tuple(t[start:start + n]) in runs)
        if found:
            (set_name, item_id, field), n = found[0]
            return Contamination(set_name, item_id, field, " ".join(t[start:start + n]))
    return None


VOCABULARY = ["a", "B", "déjà", "x1"]
SEPARATORS = [" ", "\n", ", ", "_", "(", " -- "]


def texts(min_size: int = 0, max_size: int = 12):
    pairs = st.lists(st.tuples(st.sampled_from(VOCABULARY), st.sampled_from(SEPARATORS)), min_size=min_size, max_size=max_size)
    return pairs.map(lambda pairs: "".join(w + s for w, s in pairs))


items_ = st.lists(
    st.builds(EvalItem, st.sampled_from(["s1", "s2"]), st.sampled_from(["1", "2", "10"]),
              st.dictionaries(st.sampled_from(["f", "g"]), texts(7, 14) | texts(4, 30), max_size=2)),
    max_size=4)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items_, st.lists(texts(), min_size=1, max_size=4), st.data())
def test_match_agrees_with_the_naive_reference(items, probes, data):
    index = EvalIndex.build(items)
    fields = [w for it in items for v in it.fields.values() if len(w := words_of(v)) >= 8]
    for w in fields:  # pieces of the fields themselves, between other words: the matches
        start = data.draw(st.integers(0, len(w) - 8) | st.just(0))
        end = start + data.draw(st.integers(7, 16) | st.just(len(w)))  # around the boundaries, or whole
        probes.append(f"{data.draw(texts())} {' '.join(w[start:end])} {data.draw(texts())}")
    for text in probes:
        assert index.match(text) == reference(items, text)


# ---------------------------------------------------------------------------- HumanEval


@pytest.fixture(scope="module")
def humaneval():
    tasks = humaneval_tasks()
    items = [EvalItem("humaneval", t["task_id"], {f: t[f] for f in FIELDS}) for t in tasks]
    return tasks, EvalIndex.build(items)


def test_humaneval_is_indexed_whole(humaneval):
    tasks, index = humaneval
    assert len(tasks) == 164 and index.sets == {"humaneval": 164}
    assert len(index) > 10_000


def test_a_text_quoting_a_canonical_solution_names_the_task(humaneval):
    tasks, index = humaneval
    solution = tasks[0]["canonical_solution"]
    text = ("Reviewed the patch. The helper is quadratic, see:\n\n```python\n" + solution
            + "```\nConsider sorting first; otherwise LGTM.")
    found = index.match(text)
    assert (found.set_name, found.item_id, found.field) == ("humaneval", "HumanEval/0", "canonical_solution")
    assert found.words == " ".join(words_of(solution)[:13])


def test_a_text_quoting_a_prompt_names_the_task(humaneval):
    tasks, index = humaneval
    docstring = tasks[2]["prompt"].split('"""')[1]
    found = index.match(f"As the ticket says: {docstring.upper()}")
    assert (found.item_id, found.field) == ("HumanEval/2", "prompt")


def test_a_clean_code_review_is_not_matched(humaneval):
    _, index = humaneval
    review = (
        "The retry loop in `fetch_batch` swallows the timeout and tries again forever; please cap "
        "it at three attempts and log the last error. Also, `parse_rows` builds a list only to "
        "return its length: `sum(1 for _ in rows)` avoids the copy. The new test covers the empty "
        "file but not a file whose last line lacks a newline, which is how the exporter writes it. "
        "For i in range(len(numbers)) reads better as enumerate. Otherwise this looks good to me."
    )
    assert index.match(review) is None


# ---------------------------------------------------------------------------- the fast path of match
# match hashes a text from its canonical bytes collapsed by a mask (not split into words), checks
# the run hashes against a presence bitmap, and looks up only those that pass, one by one when
# few, vectorised when many. The bitmap has two layouts (2^16 cells read from views of the hashes,
# or more cells picked by a shift): every combination must agree with the naive reference.

import contextlib  # noqa: E402
from unittest import mock  # noqa: E402

import numpy as np  # noqa: E402

from streams.rules import decontamination  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text() | texts(0, 30))
def test_the_canonical_array_is_the_canonical_bytes(text):
    assert decontamination._canonical_array(text).tobytes() == decontamination._canonical(text)


@pytest.mark.parametrize("text", ["", " ", "a", "  a  b  ", ".,;", "a.", ".a", "déjà vu", "\u00a0x\u2003y\u3000", "ΣΑΣ",
                                  "x" * 5000])
def test_the_canonical_array_of_edge_cases(text):
    assert decontamination._canonical_array(text).tobytes() == decontamination._canonical(text)


LAYOUTS = {"views": {}, "shifted cells": {"_FEWEST_BITS": 23}, "most bits": {"_FEWEST_BITS": 24},
           "one by one": {"_FEW": 10**6}, "vectorised": {"_FEW": 0}, "shifted and vectorised": {"_FEWEST_BITS": 24, "_FEW": 0}}


def layout(name: str):
    return mock.patch.multiple(decontamination, **LAYOUTS[name]) if LAYOUTS[name] else contextlib.nullcontext()


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize("sequences", [1, 700, 20_000, 70_000])
def test_the_bitmap_lets_every_indexed_hash_through(name, sequences):
    rng = np.random.default_rng(sequences)
    hashes = rng.integers(0, 2**64, sequences, dtype=np.uint64, endpoint=False)
    with layout(name):
        table = decontamination._Table([hashes], [np.arange(sequences, dtype=np.uint32)])
        assert (table._cell_bits == 16) == ("_FEWEST_BITS" not in LAYOUTS[name] and sequences <= 1 << 16)
        assert len(table.maybe(table.hashes)) == len(table)
        others = rng.integers(0, 2**64, 5000, dtype=np.uint64, endpoint=False)
        keys = rng.permutation(np.concatenate((others, hashes[: 200])))
        found = table.find(keys, table.maybe(keys))
        expected = np.isin(keys, table.hashes).nonzero()[0]
        assert [index for index, _ in found] == expected.tolist()
        assert all(table.hashes[at] == keys[index] and (at == 0 or table.hashes[at - 1] != keys[index])
                   for index, at in found)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items_, st.lists(texts(), min_size=1, max_size=3), st.data(), st.sampled_from(sorted(LAYOUTS)))
def test_match_agrees_with_the_naive_reference_in_every_layout(items, probes, data, name):
    with layout(name):
        index = EvalIndex.build(items)
    fields = [w for it in items for v in it.fields.values() if len(w := words_of(v)) >= 8]
    for w in fields:
        start = data.draw(st.integers(0, len(w) - 8) | st.just(0))
        end = start + data.draw(st.integers(7, 16) | st.just(len(w)))
        probes.append(f"{data.draw(texts())} {' '.join(w[start:end])} {data.draw(texts())}")
    with layout(name):
        for text in probes:
            assert index.match(text) == reference(items, text)


def test_humaneval_quotes_are_found_in_every_layout(humaneval):
    tasks, _ = humaneval
    items = [EvalItem("humaneval", t["task_id"], {f: t[f] for f in FIELDS}) for t in tasks]
    for name in sorted(LAYOUTS):
        with layout(name):
            index = EvalIndex.build(items)
            for task in tasks[:40]:
                solution = task["canonical_solution"]
                if len(words_of(solution)) >= 13:
                    found = index.match(f"Reviewed:\n{solution}\nLGTM")
                    assert found and found.item_id == task["task_id"] and found.field == "canonical_solution", name


def test_the_bitmaps_bytes_are_counted_and_small(humaneval):
    _, index = humaneval
    table = index._table
    assert index.nbytes == table.hashes.nbytes + table.ranks.nbytes + table._bitmap.nbytes
    assert table._bitmap.nbytes == 128 * 1024  # 2^20 bits for HumanEval's 12,425 hashes
    assert EvalIndex.build([]).nbytes == 0
