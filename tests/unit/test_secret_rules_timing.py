"""No input makes a default rule slow: each runs through the scanner on adversarial inputs of about
100 KB (its own alphabet, its prefix repeated, near misses one character short, its keywords
repeated 10,000 times) within BOUND_SECONDS.

This is not a speed test: a linear scan of 100 KB takes a few milliseconds on the 2-core machine
these tests run on (the slowest input measured 33 ms), and catastrophic backtracking takes
seconds to forever. The bound sits an order of magnitude above the first and far below the
second, so a busy machine does not fail it and an exponential regex cannot pass it; a scan is
interrupted at twice the bound (re checks for signals), so such a regex fails the test instead of
hanging it.
"""

import random
import signal
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from streams.rules.secret_rules import default_rules
from streams.rules.secrets import SecretScanner, load_scanner
from tests.unit.secret_fakes import ALNUM, BASE64, FAKES, UPPER_DIGITS, URL_SAFE

BOUND_SECONDS = 0.5
SIZE = 100_000
SCANNER = load_scanner()
KEYWORDS = {rule.id: rule.keywords for rule in default_rules()}
# Per rule: the text before the secret's body, and the body's alphabet.
SHAPES = {
    "aws-access-token": ("AKIA", UPPER_DIGITS),
    "aws-secret-access-key": ("aws_secret_access_key = ", BASE64),
    "github-pat": ("ghp_", ALNUM),
    "github-oauth": ("gho_", ALNUM),
    "github-app-token": ("ghs_", ALNUM),
    "github-refresh-token": ("ghr_", ALNUM),
    "github-fine-grained-pat": ("github_pat_", ALNUM + "_"),
    "gitlab-pat": ("glpat-", URL_SAFE),
    "slack-bot-token": ("xoxb-1234567890-", ALNUM + "-"),
    "slack-user-token": ("xoxp-1234567890-", ALNUM + "-"),
    "slack-legacy-token": ("xoxs-1234567890-", ALNUM + "-"),
    "slack-webhook-url": ("https://hooks.slack.com/services/", ALNUM + "/_+-"),
    "stripe-access-token": ("sk_live_", ALNUM),
    "openai-api-key": ("sk-proj-", URL_SAFE),
    "anthropic-api-key": ("sk-ant-", URL_SAFE),
    "huggingface-access-token": ("hf_", string.ascii_letters),
    "gcp-api-key": ("AIza", URL_SAFE),
    "npm-access-token": ("npm_", ALNUM),
    "pypi-upload-token": ("pypi-AgEIcHlwaS5vcmc", URL_SAFE),
    "private-key": ("-----BEGIN RSA PRIVATE KEY-----\n", BASE64 + "\n"),
    "url-password": ("postgres://app:", ALNUM + "!$&()*+,;=._~-"),
}


def to_size(unit: str) -> str:
    return unit * (SIZE // len(unit) + 1)


def adversarial(rule_id: str) -> dict[str, str]:
    rng = random.Random(rule_id)
    prefix, alphabet = SHAPES[rule_id]
    body = "".join(rng.choice(alphabet) for _ in range(SIZE))
    written, _ = FAKES[rule_id](rng)
    inputs = {
        "its alphabet": body,
        "its prefix, then its alphabet": prefix + body,
        "its prefix repeated": to_size(prefix),
        "its prefix and one body character, repeated": to_size(prefix + alphabet[0]),
        "near misses one character short": to_size(written[:-1] + " "),
        "near misses glued together": to_size(written[:-1]),
        "its fakes glued together": to_size(written),
        "its fakes glued to another rule's": to_size(written + FAKES["anthropic-api-key"](rng)[0]),
    }
    for keyword in KEYWORDS[rule_id]:
        inputs[f"{keyword!r} 10,000 times"] = keyword * 10_000
        inputs[f"{keyword.upper()!r} 10,000 times, spaced"] = " ".join([keyword.upper()] * 10_000)
    return inputs


@contextmanager
def interrupted_after(seconds: float) -> Iterator[None]:
    def stop(signum, frame):
        raise TimeoutError
    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def slow_inputs(scanner: SecretScanner, inputs: dict[str, str]) -> dict[str, float]:
    """The inputs that took longer than BOUND_SECONDS per 100 KB, with their seconds."""
    slow = {}
    for name, text in inputs.items():
        bound = BOUND_SECONDS * max(1.0, len(text) / SIZE)
        started = time.perf_counter()
        try:
            with interrupted_after(2 * bound):
                scanner.redact(text)
        except TimeoutError:
            pass
        elapsed = time.perf_counter() - started
        if elapsed > bound:
            slow[name] = round(elapsed, 3)
    return slow


def test_every_default_rule_has_adversarial_inputs():
    assert set(SHAPES) == set(SCANNER.rule_ids)


@pytest.mark.parametrize("rule_id", sorted(SHAPES))
def test_adversarial_inputs_finish_within_the_bound(rule_id):
    assert slow_inputs(SCANNER, adversarial(rule_id)) == {}


def test_the_bound_catches_catastrophic_backtracking(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text("[[rules]]\nid = 'nested'\nregex = '''(a+)+b'''\nkeywords = ['aa']\n")
    assert list(slow_inputs(load_scanner(rules), {"a run of a": "a" * 40})) == ["a run of a"]
