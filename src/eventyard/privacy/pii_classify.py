"""PII classifiers: what kind of personal data a whole value is, and its hashed or masked form.

Kinds: ``email``, ``phone``, ``card`` (payment card number, Luhn-checked), ``national_id``
(US SSN, UK National Insurance number, Canadian SIN) and ``ip`` (IPv4, IPv6).

Detection looks at whole values only: ``"ana@example.com"`` is an email, a sentence that
contains one is not (free text is not parsed; declare such fields with a path rule). The
checks are ordered so that the common case, a short word or an id, is rejected after a
length test and one or two character tests, before any regular expression runs.

Hashing is SHA-256 (hex) of the normalized value, the form advertising platforms match on:
emails trimmed and lower-cased, phone numbers as digits with the country code (``+`` and
separators removed; ``00`` international prefix removed), card numbers as digits, national
ids as upper-case letters and digits.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

KINDS = ("email", "phone", "card", "national_id", "ip")

_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_IPV4 = re.compile(r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}")
_SSN = re.compile(r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}")
_SIN = re.compile(r"[1-79]\d{2}([ -])\d{3}\1\d{3}")
_NINO = re.compile(r"(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]")
#: 13-19 digits, optionally in groups separated by single spaces or dashes.
_CARD = re.compile(r"\d{4}(?:[ -]?\d{2,7}){2,4}")
#: International (+ and 8-15 digits) or North American with separators.
_PHONE_INTL = re.compile(r"(?:\+|00(?=[1-9]))\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{1,4}){1,4}")
_PHONE_NANP = re.compile(r"(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}")
_NON_DIGITS = re.compile(r"\D")
_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")
_DIGITS = frozenset("0123456789")
_HEX_IP6 = frozenset("0123456789abcdefABCDEF:.")
#: The first 48 bits of an IPv6 address (what masking keeps).
_IPV6_KEEP = ((1 << 48) - 1) << 80


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digits(value: str) -> str:
    return _NON_DIGITS.sub("", value)


def classify(value: str) -> str | None:
    """The kind of PII ``value`` is as a whole (surrounding spaces aside), or ``None``."""
    if value[:1].isspace() or value[-1:].isspace():
        value = value.strip()
    n = len(value)
    if n < 6 or n > 254:
        return None
    if "@" in value:
        return "email" if _EMAIL.fullmatch(value) else None
    first = value[0]
    if first in _DIGITS:
        if n <= 15 and value.count(".") == 3 and _IPV4.fullmatch(value):
            return "ip"
        if ":" in value:
            return _ipv6(value)
        if n == 11 and _SSN.fullmatch(value):
            return "national_id"
        if n == 11 and _SIN.fullmatch(value) and luhn_valid(_digits(value)):
            return "national_id"
        if 13 <= n <= 23 and _CARD.fullmatch(value):
            digits = _digits(value)
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                return "card"
        if n <= 20 and _PHONE_NANP.fullmatch(value):
            return "phone"
        if first == "0" and n <= 24 and _PHONE_INTL.fullmatch(value) and 8 <= len(_digits(value)) <= 17:
            return "phone"
        return None
    if first == "+" or first == "(":
        if (
            n <= 24
            and (_PHONE_INTL.fullmatch(value) or _PHONE_NANP.fullmatch(value))
            and 7 <= len(_digits(value)) <= 15
        ):
            return "phone"
        return None
    if ":" in value and n <= 45:
        return _ipv6(value)
    if 9 <= n <= 13 and first.isupper() and value[-1] in "ABCD" and _NINO.fullmatch(value):
        return "national_id"
    return None


def _ipv6(value: str) -> str | None:
    if len(value) > 45 or value.count(":") < 2 or not set(value) <= _HEX_IP6:
        return None
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return None
    return "ip"


def normalize(kind: str | None, value: str) -> str:
    """The form a value is hashed in (see the module docstring)."""
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        digits = _digits(value)
        return digits[2:] if value.startswith("00") else digits
    if kind == "card":
        return _digits(value)
    if kind == "national_id":
        return _NON_ALNUM.sub("", value).upper()
    if kind == "ip":
        return value.lower()
    return value


def hash_value(kind: str | None, value: str) -> str:
    """SHA-256 (hex) of the normalized value."""
    return hashlib.sha256(normalize(kind, value).encode()).hexdigest()


def mask_value(kind: str | None, value: str) -> str:
    """A masked form that keeps what people need to recognise a value, never enough to use it.

    email: first character of the name and the domain (``a***@example.com``); phone, card and
    id numbers: the last four digits; IPv4: the last octet zeroed, IPv6: the last 80 bits
    zeroed (as analytics tools anonymize addresses); anything else: all but the last four
    characters.
    """
    value = value.strip()
    if kind == "email" and "@" in value:
        name, _, domain = value.rpartition("@")
        return f"{name[:1]}***@{domain}"
    if kind == "ip":
        if _IPV4.fullmatch(value):
            return value.rpartition(".")[0] + ".0"
        try:
            addr = ipaddress.IPv6Address(value)
        except ValueError:
            return _mask_tail(value)
        return str(ipaddress.IPv6Address(int(addr) & _IPV6_KEEP))
    if kind in ("phone", "card", "national_id"):
        out = []
        keep = 4
        for ch in reversed(value):
            if ch in _DIGITS:
                out.append(ch if keep > 0 else "*")
                keep -= 1
            else:
                out.append(ch)
        return "".join(reversed(out))
    return _mask_tail(value)


def _mask_tail(value: str) -> str:
    keep = 4 if len(value) > 8 else 0
    return "*" * (len(value) - keep) + value[len(value) - keep :]
