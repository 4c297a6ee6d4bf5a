"""The scanner's engine (streams/rules/secrets.py): offsets, placeholders, overlaps, secretGroup,
entropy, allowlists, keyword windows, and redact_object's identity and paths. Rules are given as
gitleaks files, the way a user gives them."""

import random

import pytest

from streams.rules.secrets import MAX_REACH, NEARBY, PLACEHOLDER, Finding, load_scanner
from tests.unit.secret_fakes import FAKES

DEFAULT = load_scanner()
RNG = random.Random(7)
TOKEN = FAKES["github-pat"](RNG)[0]


@pytest.fixture
def scanner_of(tmp_path):
    def load(rules: str):
        path = tmp_path / "rules.toml"
        path.write_text(rules)
        return load_scanner(path)
    return load


def rule(rule_id: str, regex: str, keywords: str = "", extra: str = "") -> str:
    keywords_line = f"keywords = [{keywords}]\n" if keywords else ""
    return f"[[rules]]\nid = \"{rule_id}\"\nregex = '''{regex}'''\n{keywords_line}{extra}\n"


def test_redact_replaces_each_secret_by_its_placeholder():
    text = f"a {TOKEN} b"
    redacted, findings = DEFAULT.redact(text)
    assert redacted == "a " + PLACEHOLDER.format(rule_id="github-pat") + " b" == "a <SECRET:github-pat> b"
    assert findings == [Finding(2, 2 + len(TOKEN), "github-pat")]


def test_redact_returns_the_same_object_when_nothing_is_found():
    text = "".join(["a clean ", "review text"])  # built at run time: not an interned constant
    assert DEFAULT.redact(text)[0] is text
    assert DEFAULT.redact("")[0] == "" and DEFAULT.find("") == []


@pytest.mark.parametrize("prefix", ["İİ ", "Straße ", "😀 ", "a\u0130b ", "ﬁ ", "İ" * 1000])  # "İ".lower() is 2 characters
def test_offsets_index_the_original_text_around_non_ascii(prefix):
    text = f"{prefix}{TOKEN} — ß"
    [finding] = DEFAULT.find(text)
    assert text[finding.start:finding.end] == TOKEN


def test_a_non_ascii_keyword_is_found_with_offsets_kept(scanner_of):
    # "İ" lower-cases to two characters: the scanner must keep offsets aligned anyway.
    scanner = scanner_of(rule("ru-key", r"КЛЮЧ=([a-z0-9]{8})", '"ключ"'))
    text = "İİ note: КЛЮЧ=abcd1234"
    [finding] = scanner.find(text)
    assert text[finding.start:finding.end] == "abcd1234"


def test_nothing_is_found_in_or_over_a_placeholder(scanner_of):
    scanner = scanner_of(rule("shouty", r"[A-Z]{5,}", '"secret"') + rule("assign", r"key=(\S+)", '"key="'))
    text = "key=<SECRET:github-pat> and <SECRET:shouty>"
    assert scanner.find(text) == []
    assert scanner.find("RANDOMWORD SECRET") == [Finding(0, 10, "shouty"), Finding(11, 17, "shouty")]


def test_a_token_written_as_a_placeholder_is_found_and_a_placeholder_of_a_rule_is_not(scanner_of):
    scanner = scanner_of(rule("d1234567", r"d?[0-9]{7}", '"secret"'))
    # A placeholder of one of the scanner's rules hides its id; any other hides all but its id.
    assert scanner.find("<SECRET:d1234567> <SECRET:7654321>") == [Finding(26, 33, "d1234567")]
    redacted = scanner.redact("<SECRET:7654321>")[0]
    assert redacted == "<SECRET:<SECRET:d1234567>>" and scanner.redact(redacted)[0] == redacted


def test_overlapping_findings_keep_the_earliest_start_then_the_longest(scanner_of):
    scanner = scanner_of(rule("short", r"abc", '"abc"') + rule("long", r"abcdef", '"abc"') + rule("late", r"cdefgh", '"cde"'))
    assert scanner.find("xabcdefgh") == [Finding(1, 7, "long")]


def test_what_an_overlap_left_over_is_found_once_its_neighbour_is_replaced(scanner_of):
    scanner = scanner_of(rule("a", r"xa{4}", '"xa"') + rule("b", r"a{2}b{4}|b{4}", '"bb"'))
    text = "xaaaabbbb"
    assert scanner.find(text) == [Finding(0, 5, "a"), Finding(5, 9, "b")]
    redacted = scanner.redact(text)[0]
    assert redacted == "<SECRET:a><SECRET:b>" and scanner.redact(redacted)[0] == redacted


@pytest.mark.parametrize(("regex", "secret_group", "expected"), [
    (r"key=([a-z]+)", None, "value"),              # unset with a group: the first group
    (r"key=[a-z]+", None, "key=value"),            # unset, no group: the whole match
    (r"(x)?key=([a-z]+)", None, "value"),          # the first group that matched something
    (r"(key)=([a-z]+)", 2, "value"),
    (r"(key)=([a-z]+)", 0, "key"),                 # 0 is unset (gitleaks): the first group
])
def test_the_secret_is_the_secret_group_else_the_first_group_else_the_match(scanner_of, regex, secret_group, expected):
    extra = f"secretGroup = {secret_group}\n" if secret_group is not None else ""
    scanner = scanner_of(rule("r", regex, '"key="', extra))
    text = "the key=value here"
    [finding] = scanner.find(text)
    assert text[finding.start:finding.end] == expected


def test_a_secret_group_that_did_not_take_part_is_no_finding(scanner_of):
    scanner = scanner_of(rule("r", r"key=(?:([a-z]+)|[0-9]+)", '"key="', "secretGroup = 1\n"))
    assert scanner.find("key=12345") == [] and len(scanner.find("key=abcde")) == 1


def test_the_entropy_floor_drops_low_entropy_secrets(scanner_of):
    scanner = scanner_of(rule("r", r"tok_([A-Za-z0-9]{16})", '"tok_"', "entropy = 3.5\n"))
    assert scanner.find("tok_aaaaaaaaaaaaaaaa") == []
    assert len(scanner.find("tok_a8Kq2LmZ9xR4vT7w")) == 1


@pytest.mark.parametrize(("allowlist", "text", "allowed"), [
    ("regexes = ['''^test''']", "key=testvalue", True),                              # target: the secret
    ("regexes = ['''^key=''']", "key=testvalue", False),                             # the secret has no "key="
    ("regexTarget = 'match'\nregexes = ['''^key=''']", "key=testvalue", True),
    ("regexTarget = 'line'\nregexes = ['''# fixture''']", "x\nkey=testvalue # fixture\ny", True),
    ("regexTarget = 'line'\nregexes = ['''# fixture''']", "# fixture\nkey=testvalue", False),
    ("stopwords = ['EXAMPLE']", "key=myexamplevalue", True),                         # case-insensitive
    ("stopwords = ['dummy']", "key=testvalue", False),
    ("condition = 'AND'\nregexes = ['''^test''']\nstopwords = ['value']", "key=testvalue", True),
    ("condition = 'AND'\nregexes = ['''^test''']\nstopwords = ['dummy']", "key=testvalue", False),
    ("paths = ['''tests/''']", "key=testvalue", False),                               # records are not files
    ("condition = 'AND'\npaths = ['''.*''']\nregexes = ['''^test''']", "key=testvalue", False),
    ("paths = ['''tests/''']\nregexes = ['''^test''']", "key=testvalue", True),        # OR: the regex alone
])
def test_rule_allowlists(scanner_of, allowlist, text, allowed):
    scanner = scanner_of(rule("r", r"key=([a-z]+)", '"key="', f"[[rules.allowlists]]\n{allowlist}\n"))
    assert (scanner.find(text) == []) is allowed


def test_the_older_single_rule_allowlist_and_global_allowlists(scanner_of):
    older = rule("r", r"key=([a-z]+)", '"key="', "[rules.allowlist]\nstopwords = ['test']\n")
    assert scanner_of(older).find("key=testvalue") == []
    rules = rule("r", r"key=([a-z]+)", '"key="') + rule("s", r"pw=([a-z]+)", '"pw="')
    assert scanner_of(rules + "[allowlist]\nstopwords = ['test']\n").find("key=testvalue pw=testvalue") == []
    targeted = scanner_of(rules + "[[allowlists]]\ntargetRules = ['s']\nstopwords = ['test']\n")
    assert [f.rule_id for f in targeted.find("key=testvalue pw=testvalue")] == ["r"]


def test_a_rule_without_keywords_runs_on_every_text(scanner_of):
    scanner = scanner_of(rule("digits", r"\b[0-9]{12}\b"))
    assert scanner.find("order 123456789012 shipped") == [Finding(6, 18, "digits")]
    record = {"a": ["order 123456789012"]}
    assert scanner.redact_object(record)[0] == {"a": ["order <SECRET:digits>"]}


def test_a_match_must_lie_near_its_keyword(scanner_of):
    # the window of a hit of "k1": NEARBY characters and the longest match of the regex (11) on each side
    scanner = scanner_of(rule("r", r"secret=[0-9]{4}", '"k1"'))
    near = ("k1secret=1234", "secret=1234k1", "k1 " + " " * (NEARBY - 1) + "secret=1234", "secret=1234" + " " * NEARBY + "k1")
    for text in near:
        assert scanner.find(text) == [Finding(text.index("secret"), text.index("secret") + 11, "r")]
    assert scanner.find("k1" + " " * (NEARBY + 1) + "secret=1234") == []
    assert scanner.find("secret=1234" + " " * (NEARBY + 1) + "k1") == []


def test_an_unbounded_match_longer_than_the_window_is_found_whole(scanner_of):
    scanner = scanner_of(rule("r", r"tok_[a-z]+", '"tok_"'))
    token = "tok_" + "".join(random.Random(1).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3 * MAX_REACH))
    assert scanner.find(f"x {token} y") == [Finding(2, 2 + len(token), "r")]


def test_rule_ids_are_those_of_the_rules():
    assert DEFAULT.rule_ids[0] == "aws-access-token" and "url-password" in DEFAULT.rule_ids
    assert len(set(DEFAULT.rule_ids)) == len(DEFAULT.rule_ids)


def evidence(text: str) -> dict:
    return {"schema_version": 1, "run_id": "run-1", "task_id": "review:src/a.py", "text": text,
            "source_files": ["src/a.py", "src/b.py"], "reasons": ["ok", "fine", "good"],
            "provenance": {"source_file": "data/e.jsonl", "line_offset": 3, "sig_hash": "ab" * 32}}


def test_redact_object_returns_the_same_object_when_nothing_is_found():
    record = evidence("a clean text with a URL https://github.com/acme/x and an e-mail ops@example.com")
    redacted, findings = DEFAULT.redact_object(record)
    assert redacted is record and findings == []
    for value in ([record, (1, 2.5, None, True)], ("a", "b"), "plain", 42, None, {}):
        assert DEFAULT.redact_object(value)[0] is value


def test_redact_object_paths_and_copies_only_what_changed():
    other = FAKES["aws-access-token"](RNG)[0]
    record = evidence(f"leaked {TOKEN}")
    record["source_files"][0] = other
    record["reasons"][2] = f"saw {TOKEN}"
    record["provenance"]["sig_hash"] = TOKEN
    record["extra"] = {TOKEN: {"nested": "fine"}}
    redacted, findings = DEFAULT.redact_object(record)
    assert [(path, f.rule_id) for path, f in findings] == [
        ("text", "github-pat"), ("source_files[0]", "aws-access-token"), ("reasons[2]", "github-pat"),
        ("provenance.sig_hash", "github-pat"), ("extra.<SECRET:github-pat>(key)", "github-pat"),
    ]
    assert findings[0][1] == Finding(7, 7 + len(TOKEN), "github-pat")
    assert redacted["text"] == "leaked <SECRET:github-pat>"
    assert redacted["source_files"] == ["<SECRET:aws-access-token>", "src/b.py"]
    assert redacted["extra"] == {"<SECRET:github-pat>": {"nested": "fine"}}
    assert redacted["extra"]["<SECRET:github-pat>"] is record["extra"][TOKEN]  # untouched parts are not copied
    assert record["text"] == f"leaked {TOKEN}"  # the input is not changed
    assert DEFAULT.redact_object(redacted)[0] is redacted


def test_redact_object_of_a_tuple_keeps_its_type():
    redacted, findings = DEFAULT.redact_object(("x", TOKEN))
    assert redacted == ("x", "<SECRET:github-pat>") and [path for path, _ in findings] == ["[1]"]
