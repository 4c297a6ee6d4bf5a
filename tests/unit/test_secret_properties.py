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


def redact_each_string(value):
    if isinstance(value, str):
        return SCANNER.redact(value)[0]
    if isinstance(value, list):
        return [redact_each_string(item) for item in value]
    if isinstance(value, dict):
        return {redact_each_string(key): redact_each_string(item) for key, item in value.items()}
    return value
