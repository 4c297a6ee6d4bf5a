"""The default pack (streams/rules/secret_rules.toml) against SPEC 10: every listed format is found
wherever a record carries it, and its look-alikes and the clean corpus are not."""

import base64
import hashlib
import random
import uuid

import pytest

from streams.rules.secrets import Finding, load_scanner
from tests.unit.secret_fakes import FAKES, look_alikes

SCANNER = load_scanner()
# Where a secret turns up in a record: alone, in a file path, in a score reason, at either end.
CONTEXTS = {
    "alone": "{}",
    "file path": "runs/2026/04/{}.log",
    "score reason": "leaked {} in logs",
    "start": "{} was pasted into the review",
    "end": "the run printed {}",
    "line of code": 'client = Client(token="{}")\n',
}


def test_every_default_rule_has_a_fake_and_look_alikes():
    assert set(FAKES) == set(SCANNER.rule_ids) == set(look_alikes(random.Random(0)))


@pytest.mark.parametrize("rule_id", sorted(FAKES))
@pytest.mark.parametrize("context", sorted(CONTEXTS))
def test_a_fake_in_its_real_format_is_found_exactly(rule_id, context):
    rng = random.Random(f"{rule_id}/{context}")
    for _ in range(20):
        written, secret = FAKES[rule_id](rng)
        text = CONTEXTS[context].format(written)
        start = text.index(secret)
        assert SCANNER.find(text) == [Finding(start, start + len(secret), rule_id)], text


@pytest.mark.parametrize("rule_id", sorted(FAKES))
def test_look_alikes_are_not_found(rule_id):
    for text in look_alikes(random.Random(rule_id))[rule_id]:
        assert SCANNER.find(text) == [], text
        assert SCANNER.find(f"see {text} here") == [], text


def test_two_secrets_side_by_side_are_two_findings():
    rng = random.Random(1)
    first, second = FAKES["github-pat"](rng)[0], FAKES["aws-access-token"](rng)[0]
    assert [f.rule_id for f in SCANNER.find(f"{first} {second}")] == ["github-pat", "aws-access-token"]
    assert [f.rule_id for f in SCANNER.find(f"{first}\n{first}")] == ["github-pat", "github-pat"]


def test_a_private_key_cut_short_is_still_found_to_the_end_of_its_body():
    rng = random.Random(2)
    block, _ = FAKES["private-key"](rng)
    truncated = block[: block.index("-----END")].rstrip()
    [finding] = SCANNER.find(truncated + "… (truncated)")
    assert (finding.start, finding.rule_id) == (0, "private-key") and finding.end >= len(truncated)


def test_a_longer_token_is_covered_whole():
    rng = random.Random(3)
    token = "glpat-" + "".join(rng.choice("abcdefXYZ0123456789") for _ in range(40))
    assert SCANNER.find(token) == [Finding(0, len(token), "gitlab-pat")]


def clean_corpus(rng: random.Random) -> list[str]:
    """SPEC 10's "not a secret by default", generated in bulk."""
    corpus = []
    for _ in range(300):
        raw = rng.randbytes(rng.choice((16, 32, 48, 64)))
        corpus += [
            str(uuid.UUID(bytes=rng.randbytes(16))),
            hashlib.sha1(raw).hexdigest(),
            hashlib.sha256(raw).hexdigest(),
            "sha512-" + base64.b64encode(hashlib.sha512(raw).digest()).decode(),
            base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
        ]
    corpus += [
        "postgres://app:${DB_PASSWORD}@db:5432/app", "https://user:<password>@host", "{{ .Values.password }}",
        "mysql://root:%PASSWORD%@localhost", "redis://:****@cache", "AKIAIOSFODNN7EXAMPLE",
        "token", "api key", "API_KEY", "password", "secret", "the token is rotated; the api key and password live in the vault",
        "Bearer token", "private key", "access_key_id", "client_secret", "SECRET_KEY_BASE",
        REVIEW_PARAGRAPH,
    ]
    return corpus


REVIEW_PARAGRAPH = """Second-opinion review of the diff to src/auth/token.rs: 30 lines changed across 2 hunks.
refresh_token() now returns a typed error instead of panicking when the session cookie is malformed; the
API key is read from SERVICE_API_KEY, never from config.yaml. The password reset test in
tests/test_password_reset.py covers the 15-minute expiry. Build 3f2c9a1e-4b7d-4c1e-9f0a-6d2b8e5c7a10
uploaded sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 at commit
e83c5163316f89bfbde7d9ab23ca2e25604af290. Lockfile integrity:
sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==.
See https://github.com/acme/platform/pull/4312 and ssh://git@github.com/acme/platform.git.
```python
@pytest.fixture
def client(token: str = os.environ["GITHUB_TOKEN"]) -> Client:
    return Client(token=token, base_url="https://api.github.com")
```
Outcome: accepted, with one follow-up: rotate the signing key before the release."""


def test_the_clean_corpus_has_no_finding():
    found = {text: SCANNER.find(text) for text in clean_corpus(random.Random(4))}
    assert {text: findings for text, findings in found.items() if findings} == {}


@pytest.mark.parametrize("name", ["PROD_AWS_SECRET_ACCESS_KEY", "backup_aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"])
def test_an_aws_secret_key_under_a_prefixed_variable_name_is_found(name):
    secret = "Zq3rT8vW1xY5aB7cD9eF2gH4iJ6kL0mN8oP1qR3s"
    text = f"export {name}={secret}\n"
    assert SCANNER.find(text) == [Finding(text.index(secret), text.index(secret) + 40, "aws-secret-access-key")]


def test_an_aws_secret_key_name_inside_a_longer_word_is_not_a_name():
    assert SCANNER.find("xaws_secret_access_key=Zq3rT8vW1xY5aB7cD9eF2gH4iJ6kL0mN8oP1qR3s") == []


@pytest.mark.parametrize("rule_id,prefix", [
    ("stripe-access-token", "sk_live_"), ("openai-api-key", "sk-proj-"), ("anthropic-api-key", "sk-ant-"),
    ("gitlab-pat", "glpat-"), ("slack-bot-token", "xoxb-1234567890-"), ("pypi-upload-token", "pypi-AgEIcHlwaS5vcmc"),
])
def test_a_token_longer_than_any_seen_is_redacted_whole(rule_id, prefix):
    """SPEC 10 gives these formats a least length only: a cap would leave the tail of a longer
    token in the text."""
    rng = random.Random(rule_id)
    body = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789") for _ in range(1500))
    text = f"the key {prefix}{body} leaked"
    start = text.index(prefix)
    assert SCANNER.find(text) == [Finding(start, start + len(prefix) + len(body), rule_id)]
