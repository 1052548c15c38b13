"""Signature receipts: a file a signer keeps, proving what they agreed to.

A receipt is plain text that reads as Markdown. It repeats the exact agreement text
between two marker lines, so anyone can check it against the hash printed above it: the
text starts after the first line that *is* the begin marker, and ends before the end marker
line that closes the file (``extract_text``)::

    text = receipt.split("\\n" + BEGIN_MARKER + "\\n", 1)[1].rsplit("\\n" + END_MARKER, 1)[0]
    hashlib.sha256(text.encode("utf-8")).hexdigest() == <the "Text SHA-256" line>

Signer-supplied values are written one per line after a ``- Label: `` prefix, and
multi-line values are indented, so no value can be a marker line (a value that merely
contains a marker's text is no match: markers are whole lines) or forge a header field.
"""

from __future__ import annotations

import datetime as dt
import re

from undersign.agreements.countries import COUNTRIES
from undersign.agreements.fields import FieldDefinition
from undersign.agreements.models import Agreement, AgreementVersion, Signature

BEGIN_MARKER = "----- BEGIN AGREEMENT TEXT -----"
END_MARKER = "----- END AGREEMENT TEXT -----"


def format_utc(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second: what receipts and exports show."""
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def receipt_filename(agreement: Agreement, version: AgreementVersion, signature: Signature) -> str:
    slug = re.sub(r"[^a-z0-9-]", "-", agreement.slug)
    return f"undersign-receipt-{slug}-v{version.number}-{signature.id}.md"


def render_receipt(
    agreement: Agreement,
    version: AgreementVersion,
    signature: Signature,
    fields: list[FieldDefinition],
) -> str:
    if signature.import_source is not None:
        return _imported_receipt(agreement, version, signature)
    lines = [
        f"# Signature receipt: {_one_line(agreement.title)}",
        "",
        "This file records that the person below agreed to the agreement text reproduced at "
        "the end of this file.",
        "",
        f"- Agreement: {_one_line(agreement.title)} ({agreement.slug})",
        f"- Version: {version.number}",
        f"- Text SHA-256: {signature.text_sha256}",
        f"- Signed at (UTC): {format_utc(signature.signed_at)}",
        f"- GitHub user id: {signature.github_id}",
        f"- GitHub login when signing: {signature.login}",
        f"- Full name: {signature.name}",
        f"- Email: {signature.email}",
    ]
    values = signature.field_values or {}
    for definition in fields:
        if definition.name in values:
            value = _field_text(definition, values[definition.name])
            lines.append(f"- {_one_line(definition.label)}: {value}")
    lines.append(f"- Receipt number: {signature.id}")
    if signature.revoked_at is not None:
        lines.append(f"- Revoked at (UTC): {format_utc(signature.revoked_at)}")
        lines.append(f"- Revocation reason: {_indent(signature.revocation_reason or '')}")
    lines += [
        "",
        "To check this receipt, compute the SHA-256 of the UTF-8 text between the two marker "
        "lines below (without the line break before the closing marker); it must equal the "
        "Text SHA-256 above.",
        "",
        BEGIN_MARKER,
        version.text,
    ]
    return "\n".join(lines) + "\n" + END_MARKER + "\n"


def _imported_receipt(agreement: Agreement, version: AgreementVersion, signature: Signature) -> str:
    """An imported signature's record: what the old tool said, and nothing it did not.

    There is no text hash to check and no agreement text between markers: the old tool
    never recorded which text the person saw, so this receipt cannot prove it either.
    """
    original = signature.original_signed_at
    lines = [
        f"# Imported signature: {_one_line(agreement.title)}",
        "",
        f"This signature was imported from {signature.import_source}; undersign did not "
        "witness it. The old tool recorded no hash of the text the person was shown, so this "
        "file names the version it was imported onto and proves no text.",
        "",
        f"- Agreement: {_one_line(agreement.title)} ({agreement.slug})",
        f"- Imported onto version: {version.number}",
        "- Text SHA-256: none (imported signature)",
        f"- Imported from: {signature.import_source}",
        f"- Imported file SHA-256: {signature.import_file_sha256 or 'unknown'}",
        "- Signed at (UTC, as the old tool recorded it): "
        + (format_utc(original) if original is not None else "not recorded"),
        "- Imported at (UTC): "
        + (format_utc(signature.imported_at) if signature.imported_at else "unknown"),
        f"- GitHub user id: {signature.github_id}",
        f"- GitHub login: {signature.login}",
    ]
    if signature.name:
        lines.append(f"- Full name: {_one_line(signature.name)}")
    if signature.email:
        lines.append(f"- Email: {signature.email}")
    lines.append(f"- Receipt number: {signature.id}")
    if signature.revoked_at is not None:
        lines.append(f"- Revoked at (UTC): {format_utc(signature.revoked_at)}")
        lines.append(f"- Revocation reason: {_indent(signature.revocation_reason or '')}")
    return "\n".join(lines) + "\n"


_BEGIN_LINE = re.compile(rf"^{re.escape(BEGIN_MARKER)}\n", re.MULTILINE)
_END_LINE = re.compile(rf"\n{re.escape(END_MARKER)}\n?\Z")


def extract_text(receipt: str) -> str:
    """The agreement text inside a receipt, exactly as hashed: between the first whole
    begin-marker line and the end-marker line that closes the receipt. ValueError when
    either is missing."""
    begin = _BEGIN_LINE.search(receipt)
    if begin is None:
        raise ValueError("not a receipt: no begin marker line")
    after = receipt[begin.end() :]
    end = _END_LINE.search(after)
    if end is None:
        raise ValueError("not a receipt: it does not end with the end marker line")
    return after[: end.start()]


def _field_text(definition: FieldDefinition, value: object) -> str:
    if definition.type == "checkbox":
        return "yes" if value else "no"
    if definition.type == "country" and isinstance(value, str) and value:
        return f"{COUNTRIES.get(value, value)} ({value})"
    return _indent(str(value))


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _indent(value: str) -> str:
    # Continuation lines start with spaces, so they can never be read as a marker or field.
    return "\n    ".join(value.splitlines()) if value else ""
