"""A user's rules file (DISTILL_SECRET_RULES) in gitleaks' format: extending, replacing and
disabling default rules, Go regexes, and a SecretRulesError that names the file, the rule and why
for everything that cannot be used."""

import random
import re

import pytest

from streams.errors import DistillError, SecretRulesError
from streams.rules.go_regex import GoRegexError, compile_go, translate
from streams.rules.secrets import Finding, load_scanner
from tests.unit.secret_fakes import FAKES

DEFAULT_IDS = load_scanner().rule_ids
RNG = random.Random(11)


@pytest.fixture
def write(tmp_path):
    def write_file(text: str, name: str = "gitleaks.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write_file


def test_extend_the_default_pack_add_a_rule_and_disable_one(write):
    path = write("""
title = "team rules"
[extend]
useDefault = true
disabledRules = ["slack-webhook-url", "npm-access-token"]

[[rules]]
id = "acme-internal-token"
description = "ACME service token"
regex = '''\\bacme_[0-9a-f]{32}\\b'''
keywords = ["acme_"]
tags = ["acme"]
""")
    scanner = load_scanner(path)
    assert scanner.rule_ids == tuple(i for i in DEFAULT_IDS if i not in ("slack-webhook-url", "npm-access-token")) + (
        "acme-internal-token",)
    token = "acme_" + "0123456789abcdef" * 2
    github, npm = FAKES["github-pat"](RNG)[0], FAKES["npm-access-token"](RNG)[0]
    assert [f.rule_id for f in scanner.find(f"{token} {github} {npm}")] == ["acme-internal-token", "github-pat"]


def test_a_rule_with_a_default_id_and_a_regex_replaces_it(write):
    path = write("""
[extend]
useDefault = true
[[rules]]
id = "gitlab-pat"
regex = '''glcorp-[0-9A-Za-z]{20}'''
keywords = ["glcorp-"]
""")
    scanner = load_scanner(path)
    assert scanner.rule_ids == DEFAULT_IDS  # same ids, same order
    assert scanner.find("glcorp-" + "aB3dE6gH9jK2mN5pQ8sT") == [Finding(0, 27, "gitlab-pat")]
    assert scanner.find(FAKES["gitlab-pat"](RNG)[0]) == []


def test_a_rule_with_a_default_id_and_no_regex_extends_it(write):
    # gitleaks' own example: an allowlist added to a default rule, everything else inherited
    path = write("""
[extend]
useDefault = true
[[rules]]
id = "github-pat"
[[rules.allowlists]]
regexTarget = "line"
regexes = ['''# test fixture''']
""")
    scanner = load_scanner(path)
    token = FAKES["github-pat"](RNG)[0]
    assert scanner.find(f"token = '{token}'  # test fixture") == []
    assert [f.rule_id for f in scanner.find(f"token = '{token}'")] == ["github-pat"]


@pytest.mark.parametrize("extend", ["", "[extend]\nuseDefault = false\n"])
def test_without_use_default_only_the_files_rules_apply(write, extend):
    scanner = load_scanner(write(extend + "[[rules]]\nid = 'mine'\nregex = '''mine_[0-9]{6}'''\nkeywords = ['mine_']\n"))
    assert scanner.rule_ids == ("mine",)
    assert scanner.find(FAKES["github-pat"](RNG)[0] + " mine_123456") == [Finding(41, 52, "mine")]


def test_go_regexes_translate_and_match_as_go_would(write):
    path = write("""
[[rules]]
id = "mid-pattern-flag"
regex = '''token(?i)=([a-z0-9]{8})'''
keywords = ["token="]
[[rules]]
id = "end-of-text"
regex = '''last=([a-z]{4})\\z'''
keywords = ["last="]
[[rules]]
id = "posix-class"
regex = '''secret:[[:alnum:]]{6}'''
keywords = ["secret:"]
""")
    scanner = load_scanner(path)
    ids = lambda text: [f.rule_id for f in scanner.find(text)]  # noqa: E731
    assert ids("token=AB12CD34") == ["mid-pattern-flag"] and ids("TOKEN=ab12cd34") == []  # (?i) only after it
    assert ids("x last=abcd") == ["end-of-text"] and ids("x last=abcd\n") == []  # \z: not before a final newline
    assert ids("secret:aB3dE6") == ["posix-class"] and ids("secret:[:al]]") == [] and ids("secret:ab-de_") == []


@pytest.mark.parametrize(("go", "python"), [
    (r"(?i)abc", r"(?i)abc"),
    (r"a(?i)b|c", r"a(?i:b)|(?i:c)"),                  # the flag holds for the later branches too
    (r"(a(?i)b|c)d", r"(a(?i:b)|(?i:c))d"),
    (r"x(?i)y(?-i)z", r"x(?i:y(?-i:z))"),
    (r"[[:alnum:]_-]+\z", r"[0-9A-Za-z_-]+\Z"),
    (r"[^[:space:]]", r"[^\t\n\v\f\r ]"),
    (r"[[:^digit:]]", r"[^0-9]"),
    (r"\Qa.b*\E+", r"a\.b\*+"),
    (r"(?P<x>a)(?<y>b)", r"(?P<x>a)(?P<y>b)"),
    (r"[]a[]", r"[\]a\[]"),
])
def test_translate(go, python):
    assert translate(go) == python
    compile_go(go)


@pytest.mark.parametrize(("go", "why"), [
    (r"(?U)a+", "ungreedy"), (r"[[:bogus:]]", "unknown POSIX class"), (r"[a[:^digit:]]", "negated POSIX class"),
])
def test_what_python_has_no_equivalent_for(go, why):
    with pytest.raises(GoRegexError, match=why):
        compile_go(go)


def test_compiled_like_re2_ascii_classes():
    assert compile_go(r"\bkey\b").search("ékeyé")  # RE2's \b is ASCII: é is not a word character
    assert not compile_go(r"\w").search("é")


GOOD_RULE = "[[rules]]\nid = 'r'\nregex = '''x_[0-9]{4}'''\nkeywords = ['x_']\n"


@pytest.mark.parametrize(("text", "rule_id", "expected"), [
    ("title = 'ok'\n[rules\nid = 'r'\n", None, r"not valid TOML: .*\(at line 2, column 7\)"),
    ("title = 'ok'\ndescription = 'unterminated", None, r"not valid TOML: .*\(line 2\)"),
    ("colour = 'red'\n" + GOOD_RULE, None, r"unknown key 'colour' in the top level \(known: title, .*rules"),
    ("[extend]\nuseDefault = true\nbase = 'x'\n", None, r"unknown key 'base' in \[extend\] \(known: useDefault, disabledRules\)"),
    ("[extend]\npath = 'other.toml'\n", None, r"'path': extending another file is not supported"),
    ("[extend]\nuseDefault = 'yes'\n", None, "useDefault must be true or false"),
    (GOOD_RULE + "severity = 'high'\n", "r", r"unknown key 'severity' in \[\[rules\]\] \(known: id, description, regex"),
    (GOOD_RULE + "[[rules.allowlists]]\nregexes = ['a']\nfiles = ['b']\n", "r",
     r"unknown key 'files' in \[\[rules.allowlists\]\]"),
    (GOOD_RULE + "[[rules.required]]\nid = 'r'\n", "r", "composite rules"),
    ("[[rules]]\nid = 'r'\nregex = '''\\pL+'''\n", "r", r"regex '\\\\pL\+' cannot be used in Python: bad escape"),
    ("[[rules]]\nid = 'r'\nregex = '''(?U)a+'''\n", "r", "ungreedy"),
    ("[[rules]]\nid = 'r'\nregex = '''(unclosed'''\n", "r", "missing \\)"),
    ("[[rules]]\nid = 'r'\nregex = '''[[:nope:]]'''\n", "r", r"unknown POSIX class \[:nope:\]"),
    ("[[rules]]\nid = 'r'\nregex = '''(a)(b)'''\nsecretGroup = 3\n", "r", r"secretGroup is 3 but the regex has 2 group\(s\)"),
    ("[[rules]]\nid = 'r'\nregex = '''a'''\nsecretGroup = -1\n", "r", "secretGroup must be a whole number"),
    ("[[rules]]\nregex = '''a'''\n", None, r"\[\[rules\]\] number 1 has no id"),
    ("[[rules]]\nid = 'r'\nkeywords = ['a']\n", "r", "it has no regex"),
    ("[[rules]]\nid = 'r'\npath = '''\\.env$'''\n", "r", "only a path: records are not files"),
    (GOOD_RULE + GOOD_RULE, "r", "the id appears in more than one"),
    ("[extend]\nuseDefault = true\ndisabledRules = ['no-such-rule']\n", "no-such-rule",
     "disabledRules names a rule that is not in the default pack"),
    (GOOD_RULE + "[extend]\ndisabledRules = ['github-pat']\n", "github-pat", r"not in this file \(useDefault is not set\)"),
    ("[[rules]]\nid = 'r'\nregex = 'a'\nkeywords = 'a'\n", "r", "keywords must be an array of strings"),
    ("[[rules]]\nid = 'r'\nregex = 'a'\nentropy = 'high'\n", "r", "entropy must be a number"),
    (GOOD_RULE + "[[rules.allowlists]]\ndescription = 'nothing'\n", "r", "has no regexes, stopwords, paths or commits"),
    (GOOD_RULE + "[[rules.allowlists]]\ncondition = 'XOR'\nstopwords = ['a']\n", "r", "condition must be OR or AND"),
    (GOOD_RULE + "[[rules.allowlists]]\nregexTarget = 'file'\nregexes = ['a']\n", "r",
     "regexTarget must be secret, match or line"),
    (GOOD_RULE + "[[rules.allowlists]]\nregexes = ['''(?U)x''']\n", "r",
     r"\[\[rules.allowlists\]\] regex '\(\?U\)x' cannot be used"),
    (GOOD_RULE + "[allowlist]\nstopwords = ['a']\n[[allowlists]]\nstopwords = ['b']\n", None, "cannot be used alongside"),
    (GOOD_RULE + "[[allowlists]]\ntargetRules = ['other']\nstopwords = ['a']\n", "other", "targetRules .* not in the result"),
    ("[allowlist]\nstopwords = ['test']\n", None, r"defines no rule and does not extend the default pack"),
    ("[[rules]]\nid = 'has space'\nregex = 'a'\n", "has space", "an id is 1-100 of the characters"),
])
def test_what_cannot_be_used_stops_the_worker_with_the_file_rule_and_why(write, text, rule_id, expected):
    path = write(text)
    with pytest.raises(SecretRulesError) as failure:
        load_scanner(path)
    message = str(failure.value)
    assert isinstance(failure.value, DistillError) and failure.value.rule_id == rule_id
    assert message.startswith(f"secret rules {path}" + (f", rule {rule_id!r}: " if rule_id else ": "))
    assert re.search(expected, message), message
    assert "Operator action:" in message


def test_an_unreadable_file(tmp_path):
    for path in (tmp_path / "missing.toml", tmp_path):
        with pytest.raises(SecretRulesError, match=rf"secret rules {re.escape(str(path))}: cannot be read \("):
            load_scanner(path)
    latin = tmp_path / "latin1.toml"
    latin.write_bytes("title = 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(SecretRulesError, match="is not UTF-8 text"):
        load_scanner(latin)
