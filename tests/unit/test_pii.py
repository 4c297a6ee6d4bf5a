"""PII redaction (DISTILL_PII=redact): e-mail addresses and public IP addresses, and nothing that
merely looks like them; the same object back when nothing is replaced."""

import pytest

from streams.rules.pii import redact_pii, redact_pii_object


@pytest.mark.parametrize(("text", "expected"), [
    ("mail jane.doe+ci@example.co.uk today", "mail <EMAIL> today"),
    ("<ops@acme.io>, dev-team@mail.acme.io.", "<<EMAIL>>, <EMAIL>."),
    ("Reported-by: A. Person <a_person@company-name.com>", "Reported-by: A. Person <<EMAIL>>"),
    ("from 8.8.8.8 and 1.1.1.1:53", "from <IP_ADDRESS> and <IP_ADDRESS>:53"),
    ("peer 2606:4700:4700::1111 answered", "peer <IP_ADDRESS> answered"),
    ("mapped ::ffff:8.8.4.4 too", "mapped <IP_ADDRESS> too"),
    ("the host (93.184.216.34).", "the host (<IP_ADDRESS>)."),
])
def test_emails_and_public_addresses_are_replaced(text, expected):
    assert redact_pii(text) == expected


@pytest.mark.parametrize("text", [
    "private 10.0.0.1, 172.16.5.4, 192.168.1.10", "loopback 127.0.0.1 and ::1", "link-local 169.254.10.20 and fe80::1",
    "documentation 192.0.2.1, 198.51.100.7, 203.0.113.9 and 2001:db8::1", "shared 100.64.0.1", "reserved 240.0.0.1",
    "multicast 224.0.0.251 and ff02::1", "unspecified 0.0.0.0 and ::", "unique local fd12:3456:789a::1",
    "version 1.2.3, 10.4.2-beta, python 3.11.7", "a longer dotted number 1.2.3.4.5 and v1.2.3.4", "not an address 300.1.2.3",
    "leading zeros 08.8.8.8", "a time 12:30:45, a MAC 00:1a:2b:3c:4d:5e, C++ std::vector<int>", "a ratio 16:9 and a::b",
    "@pytest.fixture and @decorator", "user@localhost", "npm i left-pad@1.3.0", "price 5 @ 3.50",
])
def test_what_is_not_pii_is_left_alone(text):
    assert redact_pii(text) is text


def test_redact_pii_object_copies_only_what_changed():
    clean = {"reasons": ["ok", "from 10.0.0.1"], "meta": {"n": 1}}
    assert redact_pii_object(clean) is clean
    record = {"text": "mail ops@acme.io", "files": ["a.py"], "meta": {"peer": "8.8.8.8"}, "jane@acme.io": [1, ("x",)]}
    redacted = redact_pii_object(record)
    assert redacted == {"text": "mail <EMAIL>", "files": ["a.py"], "meta": {"peer": "<IP_ADDRESS>"}, "<EMAIL>": [1, ("x",)]}
    assert redacted["files"] is record["files"] and redacted["<EMAIL>"] is record["jane@acme.io"]
    assert record["text"] == "mail ops@acme.io"
