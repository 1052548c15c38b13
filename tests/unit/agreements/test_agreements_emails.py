"""What counts as a proven address: GitHub's ``verified: true``, case-folded, nothing else."""

from __future__ import annotations

import pytest

from undersign.agreements.emails import GitHubEmail, normalize_address, parse_user_emails


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jane.Doe+CLA@Example.COM", "jane.doe+cla@example.com"),  # no dot or +tag rewriting
        ("  jane@example.com ", "jane@example.com"),
        ("STRASSE@EXAMPLE.DE", "strasse@example.de"),
        ("jane@", None),
        ("@example.com", None),
        ("no-at-sign", None),
        ("a b@example.com", None),
        ("<a@example.com>", None),
        ("a\x00@example.com", None),
        ("a" * 320 + "@example.com", None),
        (None, None),
        (42, None),
    ],
)
def test_normalize_address(raw: object, expected: str | None) -> None:
    assert normalize_address(raw) == expected


def test_only_an_exact_true_verifies_and_duplicates_keep_the_verified_one() -> None:
    payload = [
        {"email": "A@Work.example", "verified": False, "primary": False},
        {"email": "a@work.example", "verified": True, "primary": True},
        {"email": "b@work.example", "verified": "true"},
        {"email": "c@work.example", "verified": 1},
        {"email": "not an address", "verified": True},
        "junk",
        {"verified": True},
    ]
    assert parse_user_emails(payload) == [
        GitHubEmail("a@work.example", True, True),
        GitHubEmail("b@work.example", False),
        GitHubEmail("c@work.example", False),
    ]
    with pytest.raises(ValueError):
        parse_user_emails({"message": "Not Found"})
