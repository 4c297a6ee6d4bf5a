"""Property tests of the scanner with the default rules, on texts made of fake secrets, their
prefixes, placeholders, templates and non-ASCII filler: redaction is idempotent and leaves nothing
to find, no placeholder is found again, a clean text or record comes back as the same object,
offsets index the original text, and redact_object agrees with redact on every string."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.rules.secrets import PLACEHOLDER_PATTERN, load_scanner
from tests.unit.secret_fakes import FAKES

SCANNER = load_scanner()
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

fakes = st.builds(lambda rule_id, seed: (rule_id, *FAKES[rule_id](random.Random(seed))),
                  st.sampled_from(sorted(FAKES)), st.integers(0, 2**32))
# No ASCII letter, digit, "_" or "-": a fake next to it is not extended by it.
filler = st.text(alphabet=st.sampled_from(list(" \n\t.,;:()[]\"'=İßé😀—·→ﬁ")), min_size=1, max_size=8) | st.just("İ" * 600)
fragments = st.one_of(
    fakes.map(lambda fake: fake[1]),
    st.text(alphabet=st.sampled_from(list("abcXYZ019 _-/:@.=\n\"'<>{}$%*İß😀é")), max_size=30),
    st.sampled_from(["<SECRET:github-pat>", "<SECRET:url-password>", "<SECRET:", "postgres://app:", "@db", "ghp_", "AKIA",
                     "-----BEGIN RSA PRIVATE KEY-----\n", "\n-----END RSA PRIVATE KEY-----", "aws_secret_access_key = ",
                     "://", "${DB_PASSWORD}", "hooks.slack.com/services/", "sk-ant-", "xoxb-1234-"]),
)
texts = st.lists(fragments, max_size=12).map("".join)
json_values = st.recursive(
    texts | st.integers() | st.none() | st.booleans(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)


@PROPERTY_SETTINGS
@given(texts)
def test_redacting_twice_is_redacting_once_and_leaves_nothing_to_find(text):
    redacted, findings = SCANNER.redact(text)
    assert SCANNER.find(redacted) == []
    assert SCANNER.redact(redacted)[0] is redacted
    assert (redacted is text) == (not findings)


@PROPERTY_SETTINGS
@given(texts)
def test_findings_are_sorted_disjoint_and_outside_every_placeholder(text):
    findings = SCANNER.find(text)
    # A placeholder of a rule hides everything in it; one naming no rule hides all but its id
    # (a token written as "<SECRET:ghp_...>" is found).
    placeholders = [(m.start(), m.end(), m.group()[len("<SECRET:"):-1] in SCANNER.rule_ids)
                    for m in PLACEHOLDER_PATTERN.finditer(text)]
    for finding in findings:
        assert 0 <= finding.start < finding.end <= len(text)
        assert not any(finding.start < end and start < finding.end
                       and (known or not start + len("<SECRET:") <= finding.start < finding.end <= end - 1)
                       for start, end, known in placeholders)
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:]))


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(filler, fakes), min_size=1, max_size=5), filler)
def test_planted_secrets_are_found_at_their_exact_offsets(planted, tail):
    text, expected = "", []
    for before, (rule_id, written, secret) in planted:
        text += before
        start = len(text) + written.index(secret)
        expected.append((start, start + len(secret), rule_id))
        text += written
    text += tail
    found = [(f.start, f.end, f.rule_id) for f in SCANNER.find(text)]
    assert found == expected
    assert [text[start:end] for start, end, _ in found] == [secret for _, (_, _, secret) in planted]


@PROPERTY_SETTINGS
@given(json_values)
def test_redact_object_agrees_with_redact_and_keeps_a_clean_object(value):
    redacted, findings = SCANNER.redact_object(value)
    assert redacted == redact_each_string(value)
    if not findings:
        assert redacted is value


def redact_each_string(value, scanner=SCANNER):
    if isinstance(value, str):
        return scanner.redact(value)[0]
    if isinstance(value, list):
        return [redact_each_string(item, scanner) for item in value]
    if isinstance(value, dict):
        return {redact_each_string(key, scanner): redact_each_string(item, scanner) for key, item in value.items()}
    return value


# ---------------------------------------------------------------------------- redact_object's fast path
# ``redact_object`` decides the common case (nothing found) from one keyword pass over the strings it
# gathers, leaves out the short strings it has seen to hold no keyword, and hands an object with a
# finding to ``_redact_object`` (the walk in visit order). Both must give what ``_redact_object``
# alone gives, whatever the scanner has seen before.

# Values that recur from one call to the next (the remembered strings), ids that do not, and the
# types a walk must tell apart: str and dict subclasses, tuples, non-str keys, numbers, bools, None.
class Tag(str):
    pass


class Record(dict):
    pass


recurring = st.sampled_from(["schema_version", "text", "provenance", "accepted", "tests pass", "@", "@db", "ghp_",
                             "xoxb-", "private key", "aws_secret_access_key", "İ@", "a\x00b"])
leaves = texts | recurring | st.integers() | st.floats(allow_nan=False) | st.none() | st.booleans() | recurring.map(Tag)
keys = texts | recurring | st.integers(0, 3) | recurring.map(Tag)
records = st.recursive(
    leaves,
    lambda children: (st.lists(children, max_size=4) | st.lists(children, max_size=3).map(tuple)
                      | st.dictionaries(keys, children, max_size=4) | st.dictionaries(keys, children, max_size=3).map(Record)),
    max_leaves=14,
)


def plain(result):
    redacted, found = result
    return redacted, [(path, finding) for path, finding in found]


@PROPERTY_SETTINGS
@given(st.lists(records, min_size=1, max_size=4))
def test_redact_object_is_the_long_way_whatever_was_seen_before(values):
    scanner = load_scanner()
    for value in values * 3:  # the second and third time, recurring strings are remembered
        fast, slow = scanner.redact_object(value), scanner._redact_object(value)
        assert fast == slow
        assert type(fast[0]) is type(slow[0])
        if not fast[1]:
            assert fast[0] is value and slow[0] is value


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(recurring, fakes), min_size=1, max_size=6))
def test_a_remembered_string_never_hides_a_secret(pairs):
    scanner = load_scanner()
    clean = {"schema_version": 1, "task_id": "review:src/a.py", "reasons": ["ok", "tests pass"]}
    for _ in range(3):
        assert scanner.redact_object(clean) == (clean, [])
    for key, (rule_id, written, _) in pairs:
        record = {**clean, key: written, "reasons": ["ok", written]}
        redacted, found = scanner.redact_object(record)
        assert (redacted, found) == scanner._redact_object(record)
        assert {(path, finding.rule_id) for path, finding in found} >= {("reasons[1]", rule_id)}
    assert all(not scanner._has_keyword(text) for text in scanner._clean)


def test_the_remembered_strings_are_bounded():
    from streams.rules.secrets import _CLEAN_SIZE
    scanner = load_scanner()
    for n in range(3 * _CLEAN_SIZE):
        record = {"run_id": f"run-{n}", "key": f"k{n % (2 * _CLEAN_SIZE)}", "text": "clean"}
        assert scanner.redact_object(record)[0] is record
        assert scanner.redact_object(record)[0] is record
    assert 0 < len(scanner._clean) <= _CLEAN_SIZE and len(scanner._seen_once) <= _CLEAN_SIZE


def scanner_of(rules: str):
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.toml"
        path.write_text(rules)
        return load_scanner(path)


def rule(rule_id: str, regex: str, keywords: str = "") -> str:
    return f"[[rules]]\nid = \"{rule_id}\"\nregex = '''{regex}'''\n" + (f"keywords = [{keywords}]\n" if keywords else "")


# Keywords of one character ("@", "t", "?", which lower_ascii also makes of every non-ASCII
# character), a rule without keywords (every string is scanned) and a non-ASCII keyword (the
# lowering keeps offsets by other means): the fast path is taken or not, never differs.
SMALL = rule("mail", r"[a-z]+@[a-z]+\.com", '"@"') + rule("tok", r"tok_[a-z0-9]{6}", '"tok_", "t"') \
    + rule("query", r"\?[0-9]{4}", '"?"')
PACKS = [scanner_of(SMALL), scanner_of(SMALL + rule("digits", r"\b[0-9]{6}\b")),
         scanner_of(SMALL + rule("ru", r"КЛЮЧ=([a-z0-9]{4})", '"ключ"'))]
small_texts = st.lists(st.sampled_from(["a", "b@c.com", "@", "tok_", "abc123", "T", "?1234", "é", "İ", "123456", " ",
                                        "КЛЮЧ=ab12", "ключ", "\x00"]), max_size=8).map("".join)
small_records = st.recursive(small_texts | st.integers() | st.none(),
                             lambda children: st.lists(children, max_size=3) | st.dictionaries(small_texts, children, max_size=3),
                             max_leaves=10)


@PROPERTY_SETTINGS
@given(st.lists(small_records, min_size=1, max_size=3), st.sampled_from(range(len(PACKS))))
def test_redact_object_is_the_long_way_with_any_pack(values, pack):
    scanner = PACKS[pack]
    for value in values * 2:
        fast, slow = scanner.redact_object(value), scanner._redact_object(value)
        assert fast == slow
        assert fast[0] == redact_each_string(value, scanner)
        if not fast[1]:
            assert fast[0] is value


# The presence pass lowers a text more cheaply than lower_ascii, through Latin-1 or UTF-8 by how
# the str is stored; its keywords (ASCII but "?") are the same.
KEYWORDS = sorted({keyword for rule in SCANNER._rules for keyword in rule.keywords} | {"a", "ab", "key"})
presence_texts = st.text() | st.lists(st.sampled_from(KEYWORDS + ["é", "→", "😀", "\ud800", "İ", "K", "AKIA", "Ghp_", "?"]),
                                      max_size=8).map("".join)


@PROPERTY_SETTINGS
@given(presence_texts)
def test_the_presence_lowering_has_the_keywords_of_lower_ascii(text):
    from streams.rules.secrets import lower_ascii, lower_for_presence
    lowered, presence = lower_ascii(text), lower_for_presence(text)
    assert [keyword in presence for keyword in KEYWORDS] == [keyword in lowered for keyword in KEYWORDS]
    assert SCANNER._has_keyword(text) == bool(SCANNER._keyword_hits(text))


def test_two_private_keys_one_after_the_other_are_two_findings():
    """Found by the property above: the END line of one block ran on into the next BEGIN line."""
    block, _ = FAKES["private-key"](random.Random(0))
    text = block + " " + block
    assert [(f.start, f.end) for f in SCANNER.find(text)] == [(0, len(block)), (len(block) + 1, len(text))]
