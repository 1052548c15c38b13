"""Validation of custom field definitions and of what signers submit (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from undersign.agreements.errors import InvalidInput, ValidationErrors
from undersign.agreements.fields import (
    CleanSubmission,
    FieldDefinition,
    clean_email,
    clean_person_name,
    parse_field_definitions,
    validate_submission,
)

DEFINITIONS = [
    FieldDefinition("address", "Postal address", "textarea", required=True),
    FieldDefinition("website", "Web site", "url"),
    FieldDefinition("country", "Country", "country", required=True),
    FieldDefinition("employer_ok", "My employer agrees", "checkbox", required=True),
    FieldDefinition("phone", "Phone", "text"),
    FieldDefinition("work_email", "Work email", "email"),
]


def submit(**overrides: Any) -> CleanSubmission:
    values: dict[str, Any] = {
        "name": "Alice Example",
        "email": "alice@example.org",
        "field_values": {
            "address": "1 Main St\r\nSpringfield",
            "country": "de",
            "employer_ok": "y",
        },
        "agreed": True,
    }
    values.update(overrides)
    return validate_submission(DEFINITIONS, **values)


@pytest.mark.parametrize(
    "name",
    [
        "Zoë Ñúñez",
        "李小龍",
        "Ærøskøbing-Ōtani",
        # Arabic letters are the point here; a zero-width non-joiner is part of Persian spelling.
        "محمد\u200cرضا",  # noqa: RUF001
        "Łukasz 'Luke' O\u2019Brien",
        "\U0001f469\u200d\U0001f4bb Dev",  # an emoji joined with a zero-width joiner
    ],
)
def test_any_unicode_name_is_accepted(name: str) -> None:
    assert clean_person_name(f"  {name} ") == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Ali\x00ce", "Control"),
        ("Ali\nce", "Control"),
        ("Ali\tce", "Control"),
        ("Ali\x1bce", "Control"),
        ("Ali\u2028ce", "Control"),
        ("evil\u202egnp.exe", "direction"),
        ("\u2066Alice", "direction"),
        ("\u200b\u200b", "invisible"),
        ("\u200d", "visible"),
        ("", "required"),
        ("   ", "required"),
        ("x" * 201, "at most 200"),
    ],
)
def test_hostile_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        clean_person_name(name)


def test_a_name_of_exactly_the_limit_is_accepted() -> None:
    assert clean_person_name("é" * 200) == "é" * 200


def test_names_are_normalized_to_nfc() -> None:
    assert clean_person_name("Zoe\u0308") == "Zoë"


@pytest.mark.parametrize(
    "email", ["a@example.org", "first.last+tag@sub.example.co.uk", "josé@bücher.example"]
)
def test_valid_emails(email: str) -> None:
    assert clean_email(email, required=True) == email


@pytest.mark.parametrize(
    "email",
    [
        "plain",
        "a@b",
        "a@@example.org",
        "a b@example.org",
        ".a@example.org",
        "a..b@example.org",
        "a@-example.org",
        "a@example..org",
        "a@example.123",
        "<a>@example.org",
        "a\x00@example.org",
        "a@exa\u202emple.org",
        "x" * 65 + "@example.org",
        "a@" + "b" * 250 + ".org",
    ],
)
def test_invalid_emails(email: str) -> None:
    with pytest.raises(ValueError):
        clean_email(email, required=True)


def test_valid_submission_is_normalized() -> None:
    clean = submit()
    assert clean.name == "Alice Example"
    assert clean.field_values == {
        "address": "1 Main St\nSpringfield",
        "website": "",
        "country": "DE",
        "employer_ok": True,
        "phone": "",
        "work_email": "",
    }


def test_every_invalid_field_gets_its_own_message() -> None:
    with pytest.raises(ValidationErrors) as caught:
        submit(
            name="",
            email="nope",
            field_values={
                "address": "",
                "website": "javascript:alert(1)",
                "country": "XX",
                "employer_ok": "",
                "phone": "+1\x07",
                "work_email": "bad@",
            },
            agreed=False,
        )
    assert set(caught.value.errors) == {
        "name",
        "email",
        "address",
        "website",
        "country",
        "employer_ok",
        "phone",
        "work_email",
        "agree",
    }


def test_agreement_box_must_be_ticked() -> None:
    with pytest.raises(ValidationErrors) as caught:
        submit(agreed=False)
    assert list(caught.value.errors) == ["agree"]


def test_undefined_fields_are_ignored() -> None:
    clean = submit(
        field_values={
            "address": "x",
            "country": "FR",
            "employer_ok": True,
            "is_admin": "1",
            "github_id": "999",
        }
    )
    assert "is_admin" not in clean.field_values
    assert "github_id" not in clean.field_values


def test_textarea_limit_and_newlines() -> None:
    with pytest.raises(ValidationErrors) as caught:
        submit(field_values={"address": "x" * 4001, "country": "FR", "employer_ok": True})
    assert "4000" in caught.value.errors["address"]
    clean = submit(field_values={"address": "a\n\tb", "country": "FR", "employer_ok": True})
    assert clean.field_values["address"] == "a\n\tb"


def test_text_field_refuses_newlines() -> None:
    with pytest.raises(ValidationErrors) as caught:
        submit(field_values={"address": "x", "country": "FR", "employer_ok": True, "phone": "1\n2"})
    assert set(caught.value.errors) == {"phone"}


def test_url_field_allows_only_web_addresses() -> None:
    base = {"address": "x", "country": "FR", "employer_ok": True}
    for bad in ["ftp://example.org", "//example.org", "https://", "http://a b.org", "data:x"]:
        with pytest.raises(ValidationErrors):
            submit(field_values={**base, "website": bad})
    assert (
        submit(field_values={**base, "website": "https://example.org/x"}).field_values["website"]
        == "https://example.org/x"
    )


def test_field_definitions_are_parsed() -> None:
    parsed = parse_field_definitions(
        [
            {"name": "address", "label": " Address ", "type": "textarea", "required": True},
            {"name": "agree_cookies", "label": "Cookies", "type": "checkbox", "help": "Optional"},
        ]
    )
    assert parsed == [
        FieldDefinition("address", "Address", "textarea", True, ""),
        FieldDefinition("agree_cookies", "Cookies", "checkbox", False, "Optional"),
    ]
    assert parse_field_definitions(None) == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "x"}, "JSON array"),
        (["x"], "must be an object"),
        ([{"name": "Bad Name", "label": "x"}], "lowercase"),
        ([{"name": "email", "label": "x"}], "reserved"),
        ([{"name": "a", "label": "x"}, {"name": "a", "label": "y"}], "defined twice"),
        ([{"name": "a", "label": ""}], "label"),
        ([{"name": "a", "label": "x", "type": "password"}], "type must be"),
        ([{"name": "a", "label": "x", "required": "yes"}], "true or false"),
        ([{"name": "a", "label": "x", "colour": "red"}], "unknown keys"),
        ([{"name": f"f{i}", "label": "x"} for i in range(21)], "at most 20"),
    ],
)
def test_bad_field_definitions_are_refused(raw: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_field_definitions(raw)
