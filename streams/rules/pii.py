"""Personal data in samples (DISTILL_PII=redact): e-mail addresses and public IP addresses.

- An e-mail address (a local part of ``[A-Za-z0-9._%+-]``, "@", a dotted domain ending in a
  top-level domain of letters) becomes ``<EMAIL>``.
- An IPv4 or IPv6 address that ``ipaddress`` calls global becomes ``<IP_ADDRESS>``. Private,
  loopback, link-local, documentation (192.0.2.0/24, 2001:db8::/32...), shared (100.64.0.0/10),
  reserved and multicast addresses are left alone: they identify no one, and code reviews are
  full of them. A version string (1.2.3) is no address, nor are four numbers inside a longer
  dotted number (1.2.3.4.5) or after a letter (v1.2.3.4), nor a name like a::b (no digit);
  every candidate must parse as an address (no part above 255, no leading zero).

As with the secret scanner, a text or object with nothing to replace comes back as the very same
object, so the worker's common case copies nothing.
"""

import ipaddress
import re
from typing import Any

EMAIL_PLACEHOLDER = "<EMAIL>"
IP_PLACEHOLDER = "<IP_ADDRESS>"
# Possessive runs: a local part or label cannot be re-split, so no input backtracks for long.
EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}+@(?:[A-Za-z0-9-]{1,63}+\.){1,8}[A-Za-z]{2,63}+(?![A-Za-z0-9-])"
)
IPV4 = re.compile(r"(?<![0-9A-Za-z_.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9A-Za-z_]|\.[0-9])")
IPV6 = re.compile(
    r"(?<![0-9A-Za-z_:.])(?:[0-9A-Fa-f]{0,4}+:){2,7}(?:[0-9A-Fa-f]{1,4}+|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?"
    r"(?![0-9A-Za-z_:]|\.[0-9A-Za-z])"
)


def redact_pii(text: str) -> str:
    """``text`` with e-mail addresses and public IP addresses replaced; the same object when none."""
    redacted = text
    if "@" in redacted:
        redacted = EMAIL.sub(EMAIL_PLACEHOLDER, redacted)
    if ":" in redacted:  # before IPv4: ::ffff:8.8.8.8 is one address
        redacted = IPV6.sub(_public_ip, redacted)
    if "." in redacted:
        redacted = IPV4.sub(_public_ip, redacted)
    # a private address is "replaced" by itself, and re.sub then returns an equal copy
    return text if redacted == text else redacted


def redact_pii_object(obj: Any) -> Any:
    """A JSON value with ``redact_pii`` applied to every string, dict keys included; the same
    object (and the same containers) wherever nothing changed."""
    if isinstance(obj, str):
        return redact_pii(obj)
    if isinstance(obj, dict):
        items = [(redact_pii_object(key), redact_pii_object(value)) for key, value in obj.items()]
        if all(new_key is key and new is value for (new_key, new), (key, value) in zip(items, obj.items())):
            return obj
        return dict(items)
    if isinstance(obj, (list, tuple)):
        items = [redact_pii_object(item) for item in obj]
        return obj if all(new is old for new, old in zip(items, obj)) else type(obj)(items)
    return obj


def _public_ip(match: re.Match[str]) -> str:
    if not any(char.isdigit() for char in match[0]):  # a::b, dead::beef: C++ names, not addresses
        return match[0]
    try:
        address = ipaddress.ip_address(match[0])
    except ValueError:
        return match[0]
    return IP_PLACEHOLDER if address.is_global and not address.is_multicast else match[0]
