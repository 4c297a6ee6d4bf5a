"""Fake secrets in the real format of each default rule, generated from a seeded random (no
real-looking key is committed as a literal: push protection would flag it, and a fixed literal
would test one string instead of the format), and the documented look-alikes that are not secrets.

``FAKES[rule_id](rng)`` returns ``(text, secret)``: text is how the secret is written, secret the
part the rule must report (for most rules the whole text).
"""

import random
import string
from collections.abc import Callable

UPPER_DIGITS = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
URL_SAFE = ALNUM + "_-"
BASE64 = ALNUM + "+/"


def pick(rng: random.Random, alphabet: str, size: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(size))


def prefixed(*prefixes: str, alphabet: str, size: int | tuple[int, int]) -> Callable[[random.Random], tuple[str, str]]:
    def fake(rng: random.Random) -> tuple[str, str]:
        length = size if isinstance(size, int) else rng.randint(*size)
        token = rng.choice(prefixes) + pick(rng, alphabet, length)
        return token, token
    return fake


def aws_secret_key(rng: random.Random) -> tuple[str, str]:
    secret = pick(rng, BASE64, 40)
    form = rng.choice(("aws_secret_access_key = {}", "AWS_SECRET_ACCESS_KEY={}", '"aws_secret_access_key": "{}"',
                       "aws_secret_access_key: '{}'", "export AWS_SECRET_ACCESS_KEY=\"{}\"",
                       "PROD_AWS_SECRET_ACCESS_KEY={}", "backup_aws_secret_access_key: {}"))
    return form.format(secret), secret


def slack_token(prefix: str, parts: int) -> Callable[[random.Random], tuple[str, str]]:
    def fake(rng: random.Random) -> tuple[str, str]:
        ids = "-".join(pick(rng, string.digits, rng.randint(10, 13)) for _ in range(parts))
        token = f"{prefix}-{ids}-{pick(rng, ALNUM, rng.choice((24, 32, 64)))}"
        return token, token
    return fake


def slack_webhook(rng: random.Random) -> tuple[str, str]:
    url = f"https://hooks.slack.com/services/T{pick(rng, UPPER_DIGITS, 8)}/B{pick(rng, UPPER_DIGITS, 10)}/{pick(rng, ALNUM, 24)}"
    return url, url


def anthropic_key(rng: random.Random) -> tuple[str, str]:
    token = f"sk-ant-api03-{pick(rng, URL_SAFE, 93)}AA"
    return token, token


def private_key(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(("RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED ", "DSA "))
    lines = [pick(rng, BASE64, 64) for _ in range(rng.randint(4, 25))] + [pick(rng, BASE64, 20) + "=="]
    newline = rng.choice(("\n", "\r\n", "\\n"))  # a key quoted in a JSON or Python string has "\n"
    block = f"-----BEGIN {kind}PRIVATE KEY-----{newline}{newline.join(lines)}{newline}-----END {kind}PRIVATE KEY-----"
    return block, block


def url_password(rng: random.Random) -> tuple[str, str]:
    password = pick(rng, ALNUM + "!$&()*+,;=._~-", rng.randint(8, 24))
    scheme, user = rng.choice((("postgres", "app"), ("mysql", "root"), ("redis", ""), ("https", "deploy"), ("amqp", "guest")))
    return f"{scheme}://{user}:{password}@db.internal:5432/main", password


FAKES: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "aws-access-token": prefixed("AKIA", "ASIA", alphabet=UPPER_DIGITS, size=16),
    "aws-secret-access-key": aws_secret_key,
    "github-pat": prefixed("ghp_", alphabet=ALNUM, size=36),
    "github-oauth": prefixed("gho_", alphabet=ALNUM, size=36),
    "github-app-token": prefixed("ghu_", "ghs_", alphabet=ALNUM, size=36),
    "github-refresh-token": prefixed("ghr_", alphabet=ALNUM, size=36),
    "github-fine-grained-pat": prefixed("github_pat_", alphabet=ALNUM + "_", size=82),
    "gitlab-pat": prefixed("glpat-", alphabet=URL_SAFE, size=20),
    "slack-bot-token": slack_token("xoxb", 2),
    "slack-user-token": slack_token("xoxp", 3),
    "slack-legacy-token": lambda rng: slack_token(rng.choice(("xoxa", "xoxr", "xoxs")), rng.randint(1, 3))(rng),
    "slack-webhook-url": slack_webhook,
    "stripe-access-token": prefixed("sk_live_", "rk_live_", alphabet=ALNUM, size=(24, 99)),
    "openai-api-key": prefixed("sk-proj-", "sk-svcacct-", alphabet=URL_SAFE, size=(40, 156)),
    "anthropic-api-key": anthropic_key,
    "huggingface-access-token": prefixed("hf_", alphabet=string.ascii_letters, size=34),
    "gcp-api-key": prefixed("AIza", alphabet=URL_SAFE, size=35),
    "npm-access-token": prefixed("npm_", alphabet=ALNUM, size=36),
    "pypi-upload-token": prefixed("pypi-AgEIcHlwaS5vcmc", alphabet=URL_SAFE, size=(50, 180)),
    "private-key": private_key,
    "url-password": url_password,
}


def one_short(rng: random.Random, prefix: str, alphabet: str, size: int) -> str:
    return prefix + pick(rng, alphabet, size - 1)


def look_alikes(rng: random.Random) -> dict[str, list[str]]:
    """Per rule, strings that resemble its format and are not secrets (SPEC 10's exceptions, and
    near misses one character short)."""
    return {
        "aws-access-token": ["AKIAIOSFODNN7EXAMPLE", "ASIA" + pick(rng, UPPER_DIGITS, 9) + "EXAMPLE",
                             one_short(rng, "AKIA", UPPER_DIGITS, 16), "AKIAXXXXXXXXXXXXXXXX",
                             "X" + FAKES["aws-access-token"](rng)[0], "akia" + pick(rng, UPPER_DIGITS, 16)],
        "aws-secret-access-key": ["aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                  "aws_secret_access_key = " + pick(rng, BASE64, 39), "aws_secret_access_key = ${AWS_SECRET}",
                                  "the aws_secret_access_key setting is read from the vault"],
        "github-pat": [one_short(rng, "ghp_", ALNUM, 36), "ghp_" + "x" * 36, "ghp_" + "ab" * 18],
        "github-oauth": [one_short(rng, "gho_", ALNUM, 36)],
        "github-app-token": [one_short(rng, "ghs_", ALNUM, 36), "ghx_" + pick(rng, ALNUM, 36)],
        "github-refresh-token": [one_short(rng, "ghr_", ALNUM, 36)],
        "github-fine-grained-pat": [one_short(rng, "github_pat_", ALNUM, 82), "github_pat_token_name"],
        "gitlab-pat": [one_short(rng, "glpat-", ALNUM, 20), "glpat-xxxxxxxxxxxxxxxxxxxx"],
        "slack-bot-token": ["xoxb-your-bot-token", "xoxb-123-abc", "xoxb-" + pick(rng, string.digits, 11) + "-short"],
        "slack-user-token": ["xoxp-your-user-token"],
        "slack-legacy-token": ["xoxs-session", "xoxa-2-x"],
        "slack-webhook-url": ["https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                              "hooks.slack.com/services/ is the webhook host"],
        "stripe-access-token": ["sk_test_" + pick(rng, ALNUM, 24), "rk_test_" + pick(rng, ALNUM, 30),
                                "pk_live_" + pick(rng, ALNUM, 24), one_short(rng, "sk_live_", ALNUM, 24)],
        "openai-api-key": [one_short(rng, "sk-proj-", URL_SAFE, 40), "sk-proj-id", "sk-svcacct-name"],
        "anthropic-api-key": [one_short(rng, "sk-ant-", URL_SAFE, 80), "sk-ant-api03-..."],
        "huggingface-access-token": [one_short(rng, "hf_", string.ascii_letters, 34), "hf_hub_download",
                                     "hf_" + pick(rng, string.digits, 34)],
        "gcp-api-key": [one_short(rng, "AIza", URL_SAFE, 35), "AIzaSy..."],
        "npm-access-token": [one_short(rng, "npm_", ALNUM, 36), "npm_config_cache", "npm_package_version"],
        "pypi-upload-token": [one_short(rng, "pypi-AgEIcHlwaS5vcmc", URL_SAFE, 50), "pypi-" + pick(rng, URL_SAFE, 60)],
        "private-key": ["-----BEGIN PUBLIC KEY-----\n" + pick(rng, BASE64, 64) + "\n-----END PUBLIC KEY-----",
                        "-----BEGIN CERTIFICATE-----\n" + pick(rng, BASE64, 64) + "\n-----END CERTIFICATE-----",
                        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
                        "paste the -----BEGIN PRIVATE KEY----- block into the vault, never into the repository"],
        "url-password": ["postgres://app:${DB_PASSWORD}@db:5432/app", "https://user:<password>@host", "https://user:<SECRET:x>@host",
                         "postgres://app:{{ .Values.password }}@db", "postgres://app:{{.Values.password}}@db",
                         "mysql://root:%MYSQL_ROOT_PASSWORD%@localhost/db", "redis://:****@cache:6379", "amqp://guest:$RABBIT_PASS@mq",
                         "https://github.com/acme/platform/pull/42", "ssh://git@github.com/acme/platform.git",
                         "https://host.example:8443/path?q=1", "git@github.com:acme/platform.git"],
    }
