"""Custom field definitions and the validation of everything a signer submits.

Pure functions, no database: the same rules serve the signing form, the command line and
the tests. Every limit here is deliberate: a signature is evidence and ends up in receipts,
exports and spreadsheets, so names that hide text (bidi overrides, zero-width-only strings),
control characters and oversized values are refused rather than stored.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from undersign.agreements.countries import COUNTRIES
from undersign.agreements.errors import InvalidInput, ValidationErrors

FIELD_TYPES = ("text", "email", "url", "textarea", "checkbox", "country")

MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit minus the angle brackets
MAX_EMAIL_LOCAL_LENGTH = 64
MAX_TEXT_LENGTH = 300
MAX_TEXTAREA_LENGTH = 4000
MAX_URL_LENGTH = 2000
MAX_FIELDS = 20
MAX_LABEL_LENGTH = 200
MAX_HELP_LENGTH = 500

# Names used by the signing form itself; a custom field may not shadow them.
RESERVED_FIELD_NAMES = frozenset(
    {"name", "email", "agree", "csrf_token", "version_sha256", "repo", "pr", "submit"}
)

FIELD_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")

# Explicit directional formatting characters (Unicode TR9): they let a name display as
# something other than what is stored ("Trojan Source"), so they are never accepted.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Invisible characters with no role inside a name. Zero-width (non-)joiners are kept: several
# scripts (Persian, Indic) need them to spell names correctly.
INVISIBLE = frozenset("\u200b\u2060\ufeff")
# Control, surrogate, private-use, line and paragraph separator categories.
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Zl", "Zp"})

TRUE_STRINGS = frozenset({"y", "yes", "on", "true", "1"})
FALSE_STRINGS = frozenset({"", "n", "no", "off", "false", "0"})

REQUIRED = "This field is required."


@dataclass(frozen=True)
class FieldDefinition:
    """One extra question on an agreement's form (for example a postal address)."""

    name: str
    label: str
    type: str = "text"
    required: bool = False
    help: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_field_definitions(raw: object) -> list[FieldDefinition]:
    """Validate custom field definitions (as loaded from JSON) and return them.

    Raises ``InvalidInput`` naming every problem, so a maintainer fixes the file in one go.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidInput("field definitions must be a JSON array of objects")
    if len(raw) > MAX_FIELDS:
        raise InvalidInput(f"at most {MAX_FIELDS} custom fields are allowed")
    problems: list[str] = []
    definitions: list[FieldDefinition] = []
    seen: set[str] = set()
    allowed_keys = {"name", "label", "type", "required", "help"}
    for index, item in enumerate(raw):
        where = f"field {index + 1}"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be an object")
            continue
        unknown = sorted(set(item) - allowed_keys)
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(map(repr, unknown))}")
        name = item.get("name")
        if not isinstance(name, str) or not FIELD_NAME_RE.fullmatch(name):
            problems.append(
                f"{where}: name must be 1-40 lowercase letters, digits or underscores, "
                "starting with a letter"
            )
            continue
        where = f"field {name!r}"
        if name in RESERVED_FIELD_NAMES:
            problems.append(f"{where}: the name is reserved by the signing form")
        if name in seen:
            problems.append(f"{where}: defined twice")
        seen.add(name)
        label = item.get("label")
        if not isinstance(label, str) or text_problem(label.strip(), MAX_LABEL_LENGTH):
            problems.append(f"{where}: label must be 1-{MAX_LABEL_LENGTH} printable characters")
            label = ""
        field_type = item.get("type", "text")
        if field_type not in FIELD_TYPES:
            problems.append(f"{where}: type must be one of {', '.join(FIELD_TYPES)}")
        required = item.get("required", False)
        if not isinstance(required, bool):
            problems.append(f"{where}: required must be true or false")
        help_text = item.get("help", "")
        if not isinstance(help_text, str) or (
            help_text and text_problem(help_text.strip(), MAX_HELP_LENGTH)
        ):
            problems.append(f"{where}: help must be at most {MAX_HELP_LENGTH} printable characters")
            help_text = ""
        definitions.append(
            FieldDefinition(
                name=name,
                label=label.strip(),
                type=str(field_type),
                required=bool(required),
                help=help_text.strip(),
            )
        )
    if problems:
        raise InvalidInput("invalid field definitions: " + "; ".join(problems))
    return definitions


@dataclass(frozen=True)
class CleanSubmission:
    """A signing form after validation: normalized values, ready to store."""

    name: str
    email: str
    field_values: dict[str, str | bool]


def validate_submission(
    definitions: list[FieldDefinition],
    *,
    name: str | None,
    email: str | None,
    field_values: Mapping[str, object] | None,
    agreed: bool,
) -> CleanSubmission:
    """Check every field and return normalized values, or raise ``ValidationErrors``.

    All fields are checked before raising so the form can show every message at once.
    Values posted for fields that are not defined are ignored (no mass assignment).
    """
    errors: dict[str, str] = {}
    values = field_values or {}

    clean_name = ""
    try:
        clean_name = clean_person_name(name)
    except ValueError as exc:
        errors["name"] = str(exc)

    clean_mail = ""
    try:
        clean_mail = clean_email(email, required=True)
    except ValueError as exc:
        errors["email"] = str(exc)

    clean_fields: dict[str, str | bool] = {}
    for definition in definitions:
        try:
            clean_fields[definition.name] = clean_field_value(
                definition, values.get(definition.name)
            )
        except ValueError as exc:
            errors[definition.name] = str(exc)

    if agreed is not True:
        errors["agree"] = "You must tick this box to sign."

    if errors:
        raise ValidationErrors(errors)
    return CleanSubmission(name=clean_name, email=clean_mail, field_values=clean_fields)


def clean_person_name(value: str | None) -> str:
    """Any script is welcome; invisible or text-reordering characters are not."""
    text = unicodedata.normalize("NFC", _as_text(value)).strip()
    if not text:
        raise ValueError(REQUIRED)
    problem = text_problem(text, MAX_NAME_LENGTH)
    if problem:
        raise ValueError(problem)
    return text


def clean_email(value: str | None, *, required: bool) -> str:
    """A pragmatic syntax check (one @, a dotted domain that IDNA accepts), no DNS lookups."""
    text = unicodedata.normalize("NFC", _as_text(value)).strip()
    if not text:
        if required:
            raise ValueError(REQUIRED)
        return ""
    invalid = ValueError("Enter a valid email address.")
    if len(text) > MAX_EMAIL_LENGTH:
        raise ValueError(f"Use at most {MAX_EMAIL_LENGTH} characters.")
    if text.count("@") != 1:
        raise invalid
    local, domain = text.split("@")
    if not local or len(local) > MAX_EMAIL_LOCAL_LENGTH:
        raise invalid
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise invalid
    if any(
        char.isspace() or char in '"(),:;<>[\\]' or _refused_char(char) or not char.isprintable()
        for char in local
    ):
        raise invalid
    labels = domain.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        raise invalid
    for label in labels:
        if not label or len(label) > 63 or label.startswith("-") or label.endswith("-"):
            raise invalid
        if not all(char.isalnum() or char == "-" for char in label):
            raise invalid
    try:
        ascii_domain = domain.encode("idna")
    except UnicodeError:
        raise invalid from None
    if len(ascii_domain) > 253:
        raise invalid
    return text


def clean_url(value: str | None, *, required: bool) -> str:
    text = _as_text(value).strip()
    if not text:
        if required:
            raise ValueError(REQUIRED)
        return ""
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"Use at most {MAX_URL_LENGTH} characters.")
    invalid = ValueError("Enter a web address starting with https:// or http://.")
    if any(char.isspace() or _refused_char(char) or char in INVISIBLE for char in text):
        raise invalid
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
    except ValueError:
        raise invalid from None
    if parts.scheme.lower() not in ("http", "https") or not hostname:
        raise invalid
    return text


def clean_field_value(definition: FieldDefinition, value: object) -> str | bool:
    """Normalize one custom field's value according to its type."""
    if definition.type == "checkbox":
        ticked = _as_bool(value)
        if definition.required and not ticked:
            raise ValueError("You must tick this box.")
        return ticked
    if value is not None and not isinstance(value, str):
        raise ValueError("Enter text.")
    if definition.type == "email":
        return clean_email(value, required=definition.required)
    if definition.type == "url":
        return clean_url(value, required=definition.required)
    if definition.type == "country":
        code = (value or "").strip().upper()
        if not code:
            if definition.required:
                raise ValueError(REQUIRED)
            return ""
        if code not in COUNTRIES:
            raise ValueError("Choose a country from the list.")
        return code
    multiline = definition.type == "textarea"
    text = unicodedata.normalize("NFC", value or "")
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.strip()
    if not text:
        if definition.required:
            raise ValueError(REQUIRED)
        return ""
    limit = MAX_TEXTAREA_LENGTH if multiline else MAX_TEXT_LENGTH
    problem = text_problem(text, limit, allow="\n\t" if multiline else "")
    if problem:
        raise ValueError(problem)
    return text


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("Enter text.")
    return value


def _as_bool(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_STRINGS:
        return True
    if isinstance(value, str) and value.strip().lower() in FALSE_STRINGS:
        return False
    raise ValueError("Tick the box or leave it empty.")


def _refused_char(char: str) -> bool:
    return char in BIDI_CONTROLS or unicodedata.category(char) in REFUSED_CATEGORIES


def text_problem(text: str, limit: int, allow: str = "") -> str | None:
    """Why ``text`` cannot be stored as a single printable value, or None if it can."""
    if not text:
        return REQUIRED
    if len(text) > limit:
        return f"Use at most {limit} characters."
    for char in text:
        if char in allow:
            continue
        if char in BIDI_CONTROLS:
            return "Text direction control characters are not allowed."
        if _refused_char(char) or char in INVISIBLE:
            return "Control and invisible characters are not allowed."
    if not any(unicodedata.category(char)[0] in "LNPS" for char in text):
        return "Enter visible characters."
    return None
