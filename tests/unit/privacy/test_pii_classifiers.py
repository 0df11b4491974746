"""PII classifiers: detection of whole values, Luhn, normalization, hashing and masking."""

from __future__ import annotations

import hashlib

import pytest

from eventyard.privacy.pii_classify import classify, hash_value, luhn_valid, mask_value, normalize

DETECTION = [
    # email
    ("ana@example.com", "email"),
    ("Ana.B+news@Mail.Example.co.uk", "email"),
    ("ana@localhost", None),
    ("write to ana@example.com", None),
    ("@handle", None),
    # phone
    ("+1 415 555 0100", "phone"),
    ("+14155550100", "phone"),
    ("(415) 555-0100", "phone"),
    ("415-555-0100", "phone"),
    ("415.555.0100", "phone"),
    ("+44 20 7946 0958", "phone"),
    ("0044 20 7946 0958", "phone"),
    ("4155550100", None),  # ten bare digits: an id as often as a phone; declare it with a path rule
    ("2024-01-15", None),
    ("1.2.3", None),
    # card (Luhn)
    ("4111 1111 1111 1111", "card"),
    ("4111-1111-1111-1111", "card"),
    ("4111111111111111", "card"),
    ("378282246310005", "card"),
    ("4111111111111112", None),
    ("1234 5678 9012 3456", None),
    # national ids
    ("123-45-6789", "national_id"),
    ("000-12-3456", None),
    ("666-12-3456", None),
    ("923-45-6789", None),
    ("123-00-6789", None),
    ("AB 12 34 56 C", "national_id"),
    ("AB123456C", "national_id"),
    ("QQ123456C", None),
    ("130 692 544", "national_id"),
    ("130 692 545", None),
    # ip
    ("192.168.1.23", "ip"),
    ("8.8.8.8", "ip"),
    ("256.1.1.1", None),
    ("2001:db8::1", "ip"),
    ("fe80::1ff:fe23:4567:890a", "ip"),
    ("10:00:00", None),
    ("Chrome/120.0.6099.109", None),
    # ordinary values
    ("Sweatshirt", None),
    ("Order Completed", None),
    ("", None),
    ("x" * 300, None),
]


@pytest.mark.parametrize(("value", "kind"), DETECTION)
def test_classify(value: str, kind: str | None) -> None:
    assert classify(value) == kind


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("79927398713", True),
        ("79927398710", False),
        ("0", True),
        ("18", True),
        ("19", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("kind", "value", "normalized"),
    [
        ("email", "  Ana@Example.COM ", "ana@example.com"),
        ("phone", "+1 (415) 555-0100", "14155550100"),
        ("phone", "0044 20 7946 0958", "442079460958"),
        ("card", "4111-1111-1111-1111", "4111111111111111"),
        ("national_id", "ab 12 34 56 c", "AB123456C"),
        ("national_id", "123-45-6789", "123456789"),
        ("ip", " 2001:DB8::1 ", "2001:db8::1"),
        (None, " x ", "x"),
    ],
)
def test_normalize_and_hash(kind: str | None, value: str, normalized: str) -> None:
    assert normalize(kind, value) == normalized
    assert hash_value(kind, value) == hashlib.sha256(normalized.encode()).hexdigest()


def test_the_same_email_written_differently_hashes_the_same() -> None:
    assert hash_value("email", "Ana@Example.com") == hash_value("email", " ana@example.com")
    # what `printf ana@example.com | sha256sum` prints: the form ad platforms match on
    assert hash_value("email", "ana@example.com") == "8e43ca37701228e74983efdbd0cff5c16b3b1e5d4e29a7c05626d4d25a018e11"


@pytest.mark.parametrize(
    ("kind", "value", "masked"),
    [
        ("email", "ana@example.com", "a***@example.com"),
        ("phone", "+1 415 555 0100", "+* *** *** 0100"),
        ("card", "4111 1111 1111 1111", "**** **** **** 1111"),
        ("national_id", "123-45-6789", "***-**-6789"),
        ("ip", "192.168.1.23", "192.168.1.0"),
        ("ip", "2001:db8:1:2:3:4:5:6", "2001:db8:1::"),
        (None, "secret-token", "********oken"),
        (None, "short", "*****"),
    ],
)
def test_mask(kind: str | None, value: str, masked: str) -> None:
    assert mask_value(kind, value) == masked
